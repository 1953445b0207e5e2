#!/usr/bin/env python3
"""compose.py -- reads docker/docker-compose.yml as docker-compose resolved it, and
docker/Dockerfile, for the tests that run the compose topology natively
(test_compose_topology.sh) and check the compose file's references (test_compose_file.sh).

  docker-compose ... config | compose.py services             every service
  docker-compose ... config | compose.py sluice-services      services built from the Dockerfile
  docker-compose ... config | compose.py env SERVICE          NAME=VALUE per line
  docker-compose ... config | compose.py command SERVICE      the command's words, one per line
  docker-compose ... config | compose.py config SERVICE       host path of the file the
                                                              command runs (`run FILE`)
  docker-compose ... config | compose.py binds SERVICE        "HOST_PATH<TAB>TARGET" per bind
  docker-compose ... config | compose.py ports SERVICE        published ports, one per line
  docker-compose ... config | compose.py depends SERVICE      "NAME CONDITION" per line
  docker-compose ... config | compose.py healthcheck SERVICE  the healthcheck's test, or nothing
  compose.py dockerfile-healthcheck DOCKERFILE                the shell command of HEALTHCHECK
  compose.py dockerfile-runtime-packages DOCKERFILE           apt-get packages of the last stage

Exit status 2 (with a message) when the service or the item does not exist.
"""
import re
import sys


def die(msg):
    sys.stderr.write("compose.py: %s\n" % msg)
    sys.exit(2)


def load():
    import yaml  # python3-yaml, a dependency of Debian's docker-compose

    doc = yaml.safe_load(sys.stdin)
    if not isinstance(doc, dict) or "services" not in doc:
        die("stdin is not a resolved compose file (docker-compose config)")
    return doc


def service(doc, name):
    s = doc["services"].get(name)
    if s is None:
        die("no service %r" % name)
    return s


def binds(s):
    out = []
    for v in s.get("volumes", []):
        if isinstance(v, dict):
            if v.get("type") == "bind":
                out.append((v["source"], v["target"]))
            continue
        parts = v.split(":")
        if len(parts) >= 2 and parts[0].startswith("/"):
            out.append((parts[0], parts[1]))
    return out


def dockerfile_lines(path):
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    out, cur = [], ""
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if not cur and re.match(r"\s*#", line):
                continue
            if line.endswith("\\"):
                cur += line[:-1] + " "
                continue
            cur += line
            if cur.strip():
                out.append(cur.strip())
            cur = ""
    if cur.strip():
        out.append(cur.strip())
    return out


def main(argv):
    if len(argv) < 2:
        die("usage: see the file's comment")
    cmd = argv[1]
    if cmd == "dockerfile-healthcheck":
        for ins in dockerfile_lines(argv[2]):
            m = re.match(r"HEALTHCHECK\s+(?:--\S+\s+)*CMD\s+(.*)$", ins)
            if m:
                print(m.group(1))
                return
        die("no HEALTHCHECK ... CMD in %s" % argv[2])
    if cmd == "dockerfile-runtime-packages":
        stages = [[]]
        for ins in dockerfile_lines(argv[2]):
            if ins.upper().startswith("FROM "):
                stages.append([])
            stages[-1].append(ins)
        pkgs = []
        for ins in stages[-1]:
            for m in re.finditer(r"apt-get install ([^&;|]*)", ins):
                pkgs += [w for w in m.group(1).split() if not w.startswith("-")]
        if not pkgs:
            die("no apt-get install in the last stage of %s" % argv[2])
        print("\n".join(pkgs))
        return
    doc = load()
    if cmd == "services":
        print("\n".join(sorted(doc["services"])))
        return
    if cmd == "sluice-services":
        for name, s in sorted(doc["services"].items()):
            b = s.get("build")
            if isinstance(b, dict) and b.get("dockerfile", "").endswith("docker/Dockerfile"):
                print(name)
        return
    if len(argv) < 3:
        die("%s needs a SERVICE" % cmd)
    s = service(doc, argv[2])
    if cmd == "env":
        env = s.get("environment") or {}
        if isinstance(env, list):
            env = dict(e.split("=", 1) if "=" in e else (e, "") for e in env)
        for k, v in sorted(env.items()):
            print("%s=%s" % (k, "" if v is None else v))
    elif cmd == "command":
        c = s.get("command") or []
        print("\n".join(c if isinstance(c, list) else c.split()))
    elif cmd == "config":
        c = s.get("command") or []
        c = c if isinstance(c, list) else c.split()
        if len(c) < 2 or c[0] != "run":
            die("the command of %s is not 'run FILE'" % argv[2])
        for src, dst in binds(s):
            if dst == c[1]:
                print(src)
                return
        die("%s runs %s, which no bind mount provides" % (argv[2], c[1]))
    elif cmd == "binds":
        for src, dst in binds(s):
            print("%s\t%s" % (src, dst))
    elif cmd == "ports":
        for p in s.get("ports") or []:
            if isinstance(p, dict):
                p = "%s:%s:%s/%s" % (p.get("host_ip", ""), p.get("published", ""),
                                     p.get("target", ""), p.get("protocol", "tcp"))
            print(p)
    elif cmd == "depends":
        d = s.get("depends_on") or {}
        if isinstance(d, list):
            d = {k: {"condition": "service_started"} for k in d}
        for k, v in sorted(d.items()):
            print("%s %s" % (k, (v or {}).get("condition", "service_started")))
    elif cmd == "healthcheck":
        h = s.get("healthcheck") or {}
        t = h.get("test")
        if t:
            print(" ".join(t) if isinstance(t, list) else t)
    else:
        die("unknown command %r" % cmd)


if __name__ == "__main__":
    main(sys.argv)
