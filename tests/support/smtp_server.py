#!/usr/bin/env python3
"""A small SMTP server for sv-lite's mail tests (tests/mail.rs), on aiosmtpd.

usage: smtp_server.py DIR [--auth USER:PASSWORD]

Listens on 127.0.0.1 on a free port and prints that port on one line to stdout once it
accepts connections. Each accepted message is stored as DIR/N.eml, exactly the bytes of the
DATA section as received (CRLF line endings, dot-stuffing undone), and DIR/N.env holds the
envelope: the MAIL FROM address, then one line per RCPT TO address.

A recipient whose address starts with "reject" is refused with "550 5.1.1 no such user".
With --auth, AUTH PLAIN (and LOGIN) with exactly USER and PASSWORD is required before MAIL,
over plain TCP (aiosmtpd refuses AUTH without TLS unless told otherwise).

Needs Debian's python3-aiosmtpd (installed by .ci/run). Runs until killed.
"""
import asyncio
import logging
import os
import sys
import warnings

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

# AUTH over plain TCP is what the tests want: no warnings about it on the test's stderr.
warnings.filterwarnings("ignore")
logging.getLogger("mail.log").setLevel(logging.ERROR)

DIR = sys.argv[1]
AUTH = None
if len(sys.argv) > 3 and sys.argv[2] == "--auth":
    user, _, password = sys.argv[3].partition(":")
    AUTH = (user.encode(), password.encode())


class Handler:
    def __init__(self):
        self.count = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("reject"):
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        base = os.path.join(DIR, str(self.count))
        with open(base + ".env.tmp", "w") as env:
            env.write("\n".join([envelope.mail_from] + envelope.rcpt_tos) + "\n")
        with open(base + ".eml", "wb") as eml:
            eml.write(envelope.original_content)
        # The envelope file appears last, whole: the test waits for it.
        os.rename(base + ".env.tmp", base + ".env")
        return "250 2.0.0 stored"


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == AUTH
    # handled=False: aiosmtpd answers a failure with its 535 (handled=True would mean "already answered").
    return AuthResult(success=ok, handled=False)


def factory(handler):
    if AUTH is None:
        return SMTP(handler)
    return SMTP(handler, authenticator=authenticator, auth_required=True, auth_require_tls=False)


async def main():
    handler = Handler()
    loop = asyncio.get_running_loop()
    # SMTP_PORT: listen on that port (a test that lets a delivery fail first picks it).
    port = int(os.environ.get("SMTP_PORT", "0"))
    server = await loop.create_server(lambda: factory(handler), "127.0.0.1", port)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()


asyncio.run(main())
