"""The relay cluster on one machine: PostgreSQL, a three-node Garage, HAProxy, relay processes.

Each part is a real server process on loopback, started from the distribution's (or a built)
binary with its own throwaway directory and port, never a system service:

- ``postgres.PostgresServer``: ``initdb`` into a directory, ``postgres`` on 127.0.0.1 and a
  unix socket inside that directory, password authentication;
- ``garage.GarageCluster``: N Garage nodes (replication 3), connected, a layout applied, a
  bucket and an access key created through Garage's admin API;
- ``haproxy.HAProxy``: a load balancer in front of relay processes, consistent-hash routing
  of live channels;
- ``programs``: where the binaries are, and a clear error naming the one that is missing.

The cluster tests (``tests/cluster``) and ``make cluster`` (``python -m privastead.devcluster``)
use the same launchers. The deployment on real machines is in ``docs/deploy-cluster.md``.
"""
