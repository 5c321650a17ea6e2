# sv-lite as the init of every allocation: one Docker task whose PID 1 is sv-lite, running the
# programs of ../kubernetes/sv-lite.yaml (baked into the image by ../kubernetes/Dockerfile).
# Nomad places the allocations, keeps `count` of them and rolls updates; sv-lite orders,
# restarts and stops the programs inside each one. See docs/SCALING.md.
#
#   nomad job run examples/nomad/sv-lite.nomad.hcl
#   nomad alloc exec -task shop <alloc> /sv-lite ctl status
#   nomad alloc logs -f <alloc> shop        # every program's output, `name:N | line`
job "shop" {
  datacenters = ["dc1"]
  type        = "service"

  # Tron's node pool becomes Nomad's placement: a node pool (Nomad 1.6+) or a constraint.
  # node_pool = "services"
  constraint {
    attribute = "${node.class}"
    value     = "services"
  }

  update {
    max_parallel     = 1
    health_check     = "checks" # a new allocation counts once every check passes: /readyz
    min_healthy_time = "10s"
    healthy_deadline = "5m"
    auto_revert      = true
  }

  group "shop" {
    count = 3 # replicas: one sv-lite per allocation, not one sv-lite for the cluster

    network {
      port "http" {
        to = 8080
      }
      port "svlite" {
        to = 9110 # sv-lite's `http:` endpoint
      }
    }

    service {
      name     = "shop"
      port     = "http"
      provider = "nomad" # or "consul"

      # Readiness: 200 once every autostart program is RUNNING (db-proxy healthy, shop passing
      # its own health check); 503 with the list of what is not. Failing, the allocation is
      # taken out of the service's healthy instances and an update does not go on.
      check {
        name     = "sv-lite ready"
        type     = "http"
        port     = "svlite"
        path     = "/readyz"
        interval = "5s"
        timeout  = "2s"
      }

      # Liveness: sv-lite's loop answers. Programs are restarted by sv-lite itself; Nomad
      # restarts the task only when sv-lite itself stops answering.
      check {
        name     = "sv-lite alive"
        type     = "http"
        port     = "svlite"
        path     = "/healthz"
        interval = "10s"
        timeout  = "2s"

        check_restart {
          limit = 3
          grace = "30s"
        }
      }
    }

    # For Prometheus: scrape /metrics at the instances of this service (Prometheus's
    # nomad_sd_configs or consul_sd_configs, keeping the "metrics" tag).
    service {
      name     = "shop-sv-lite"
      port     = "svlite"
      provider = "nomad"
      tags     = ["metrics", "metrics_path=/metrics"]
    }

    task "shop" {
      driver = "docker"

      config {
        image = "registry.example.com/shop:1.4.2" # ENTRYPOINT ["/sv-lite", "-c", "/etc/sv-lite.yaml"]
        ports = ["http", "svlite"]
        init  = false # sv-lite is the init: it reaps orphans and handles the signals
      }

      # SIGTERM is sv-lite's shutdown: every program is stopped, dependents first, and sv-lite
      # exits 0. A second SIGTERM kills what is left at once; Nomad sends one, then SIGKILL
      # after kill_timeout.
      kill_signal = "SIGTERM"

      # The longest depends_on chain of stop times, since sv-lite stops dependents first:
      #   shop      lifecycle 5 s + 5 s + stoptime 20 s = 30 s
      #   db-proxy  stoptime 10 s                        = 10 s
      #   40 s + up to 2 s for buffered output + a margin = 50 s.
      # Nomad caps kill_timeout at the client's max_kill_timeout (30s by default): raise it on
      # the clients, or this is cut to 30 s.
      kill_timeout = "50s"

      # Optional: deregister the services, then wait before the SIGTERM, so that clients stop
      # picking this allocation first. Not counted in kill_timeout.
      # shutdown_delay = "5s"

      resources {
        cpu    = 500
        memory = 512
      }
    }
  }
}
