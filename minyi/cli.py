"""The `minyi` command: up, token, migrate, rebuild, serve, docs."""

from __future__ import annotations

import argparse
import sys

from shared.settings import SERVICES, get_settings


def _cmd_up(args: argparse.Namespace) -> int:
    from minyi.stack import up

    return up(get_settings(), demo=args.demo)


def _cmd_token(args: argparse.Namespace) -> int:
    from shared.auth import ROLES, ensure_dev_signing_key, sign_token

    settings = get_settings()
    roles = args.role
    bad = [r for r in roles if r not in ROLES]
    if bad:
        print(f"error: unknown role {', '.join(bad)}; choose from {', '.join(ROLES)}", file=sys.stderr)
        return 2
    if args.region and not args.region.isdigit():
        print("error: --region is an administrative code prefix of digits, e.g. 320923", file=sys.stderr)
        return 2
    if args.ttl <= 0:
        print("error: --ttl must be a positive number of seconds", file=sys.stderr)
        return 2
    key = ensure_dev_signing_key(settings.dev_signing_key_file)
    sub = args.sub or args.deputy or args.unit or f"dev-{roles[0]}"
    print(
        sign_token(
            key,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            sub=sub,
            roles=roles,
            region=args.region or "",
            deputy_id=args.deputy,
            unit_id=args.unit,
            ttl_seconds=args.ttl,
        )
    )
    return 0


def _cmd_migrate(args: argparse.Namespace) -> int:
    from shared.db import upgrade

    unknown = sorted(set(args.services) - set(SERVICES))
    if unknown:
        print(f"error: unknown service {', '.join(unknown)}; choose from {', '.join(SERVICES)}", file=sys.stderr)
        return 2
    settings = get_settings()
    url = settings.database_url or (
        f"postgresql+asyncpg://postgres@127.0.0.1:{settings.postgres_port}/minyi"
    )
    for service in args.services or SERVICES:
        print(f"migrating {service} …", flush=True)
        upgrade(service, url)
    print("migrations at head.")
    return 0


REBUILDABLE = ("suggestions", "scoring")


def _cmd_rebuild(args: argparse.Namespace) -> int:
    import asyncio
    import importlib

    import nats

    from shared.db import Database

    settings = get_settings()
    url = settings.database_url or f"postgresql+asyncpg://postgres@127.0.0.1:{settings.postgres_port}/minyi"
    # Without a URL: the embedded stack of `minyi up`, like the database above.
    nats_url = settings.nats_url or f"nats://127.0.0.1:{settings.nats_port}"
    rebuild = importlib.import_module(f"services.{args.service}.rebuild").rebuild

    async def run() -> int:
        db = Database.connect(url, application_name=f"minyi-rebuild-{args.service}", pool_size=2)
        try:
            nc = await nats.connect(nats_url, name=f"minyi-rebuild-{args.service}", connect_timeout=5,
                                    max_reconnect_attempts=3)
        except Exception as exc:
            print(f"error: cannot reach NATS at {nats_url}: {type(exc).__name__}: {exc}", file=sys.stderr)
            await db.dispose()
            return 1
        try:
            done = await rebuild(db, nc.jetstream(), progress=lambda line: print(line, flush=True))
        finally:
            await nc.close()
            await db.dispose()
        print(f"rebuilt {args.service} from {done.events:,} events in {done.seconds:.1f} s"
              + (f"; {done.malformed} malformed messages skipped" if done.malformed else ""))
        return 0

    return asyncio.run(run())


def _cmd_serve(args: argparse.Namespace) -> int:
    import importlib

    from shared.service import serve

    spec = importlib.import_module(f"services.{args.service}.service").SPEC
    serve(spec)
    return 0


def _cmd_docs(args: argparse.Namespace) -> int:
    from minyi.docs import check, write

    if args.check:
        drift = check()
        for line in drift:
            print(line, file=sys.stderr)
        return 1 if drift else 0
    for path in write():
        print(f"wrote {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="minyi", description="Minyi (民意): deputies' liaison platform")
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="start the embedded servers and all five services in the foreground")
    up.add_argument("--demo", action="store_true", help="load a demo county and a grid-platform simulator")
    up.set_defaults(func=_cmd_up)

    token = sub.add_parser("token", help="print a development JWT that the running stack accepts")
    token.add_argument("--role", action="append", required=True, help="a role; repeat for several")
    token.add_argument("--region", default="", help="administrative code prefix the caller may see")
    token.add_argument("--deputy", help="deputy id (for role deputy)")
    token.add_argument("--unit", help="handling unit id (for role unit)")
    token.add_argument("--sub", help="subject; defaults to the deputy, unit or role")
    token.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds (default 3600)")
    token.set_defaults(func=_cmd_token)

    migrate = sub.add_parser("migrate", help="bring service schemas to the latest migration")
    migrate.add_argument(
        "services", nargs="*", metavar="SERVICE", help=f"any of {', '.join(SERVICES)} (default: all)"
    )
    migrate.set_defaults(func=_cmd_migrate)

    rebuild = sub.add_parser("rebuild", help="rebuild a service's projection from its event stream (idempotent)")
    rebuild.add_argument("service", choices=REBUILDABLE)
    rebuild.set_defaults(func=_cmd_rebuild)

    serve = sub.add_parser("serve", help="run one service (what the container image runs)")
    serve.add_argument("service", choices=SERVICES)
    serve.set_defaults(func=_cmd_serve)

    docs = sub.add_parser("docs", help="generate docs/openapi/<service>.json and docs/asyncapi.yaml")
    docs.add_argument("--check", action="store_true", help="fail when the committed documents differ")
    docs.set_defaults(func=_cmd_docs)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    sys.exit(args.func(args))


if __name__ == "__main__":
    main()
