//! User and group lookups from `/etc/passwd` and `/etc/group`, read directly: the static
//! binary must not use NSS (glibc's static getgrnam would try to load shared modules).

use std::fs;

/// A group's id and its listed members.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    pub gid: u32,
    pub members: Vec<String>,
}

/// Looks up a group by name (or numeric id) in `/etc/group`.
pub fn group(name: &str) -> Result<Group, String> {
    let text = fs::read_to_string("/etc/group").map_err(|error| format!("/etc/group: {error}"))?;
    find_group(&text, name).ok_or_else(|| format!("no group named {name:?} in /etc/group"))
}

/// Whether the user `uid` (whose primary group is looked up in `/etc/passwd`) belongs to `group`.
#[must_use]
pub fn uid_in_group(uid: u32, group: &Group) -> bool {
    let Ok(passwd) = fs::read_to_string("/etc/passwd") else { return false };
    match find_user(&passwd, uid) {
        Some((name, primary_gid)) => primary_gid == group.gid || group.members.contains(&name),
        None => false,
    }
}

/// `name:x:gid:member,member` lines; `name` may also be the numeric gid.
#[must_use]
pub fn find_group(text: &str, name: &str) -> Option<Group> {
    text.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        let [group_name, _, gid, members] = fields[..] else { return None };
        let gid: u32 = gid.parse().ok()?;
        (group_name == name || name.parse() == Ok(gid)).then(|| Group {
            gid,
            members: members.split(',').filter(|member| !member.is_empty()).map(String::from).collect(),
        })
    })
}

/// `name:x:uid:gid:...` lines: the user's name and primary gid.
#[must_use]
pub fn find_user(text: &str, uid: u32) -> Option<(String, u32)> {
    text.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        if fields.len() < 4 || fields[2].parse() != Ok(uid) {
            return None;
        }
        Some((fields[0].to_string(), fields[3].parse().ok()?))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_and_users_parse() {
        let groups = "root:x:0:\nops:x:1001:alice,bob\n# junk\n";
        assert_eq!(find_group(groups, "ops"), Some(Group { gid: 1001, members: vec!["alice".into(), "bob".into()] }));
        assert_eq!(find_group(groups, "1001").map(|group| group.gid), Some(1001));
        assert_eq!(find_group(groups, "nope"), None);
        let users = "root:x:0:0:root:/root:/bin/sh\ncarol:x:1002:1001::/home/carol:/bin/sh\n";
        assert_eq!(find_user(users, 1002), Some(("carol".to_string(), 1001)));
        assert_eq!(find_user(users, 7), None);
    }
}
