"""The `minyi` command: up, token, login-url, migrate, rebuild, serve, docs, dead-letters, outbox, pii-keys,
hotspots."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable
from datetime import date
from pathlib import Path
from typing import Any

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
    key = _signing_key(args.key, lambda: ensure_dev_signing_key(settings.dev_signing_key_file))
    if key is None:
        return 2
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
            sources=args.source or (),
            ttl_seconds=args.ttl,
        )
    )
    return 0


def _signing_key(path: Path | None, default: Callable[[], Any]) -> Any:
    """The key `--key` names, else `default()`; None (after saying why) when that file is no key.
    An operator's key is read, never made: a new one would sign tokens nothing accepts."""
    if path is None:
        return default()
    from shared.auth import load_signing_key

    try:
        return load_signing_key(path)
    except (OSError, ValueError) as exc:
        print(f"error: --key {path}: {exc}", file=sys.stderr)
        return None


def _cmd_login_url(args: argparse.Namespace) -> int:
    from services.web import dev_login

    settings = get_settings()
    principal = dev_login.Principal(roles=tuple(args.role), region=args.region or "", deputy_id=args.deputy,
                                    unit_id=args.unit, name=args.name or "")
    problems = dev_login.principal_problems(principal)
    if problems:
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
        return 2
    key = _signing_key(args.key, lambda: dev_login.signing_key(settings))
    if key is None:
        return 2
    ticket = dev_login.mint_ticket(key, principal, issuer=settings.jwt_issuer,
                                   next_path=args.next or dev_login.default_next(principal.roles))
    # `minyi up` tells its processes the web tier's address; a shell beside it knows only the port.
    base = (settings.public_base_url if "public_base_url" in settings.model_fields_set
            else f"http://127.0.0.1:{settings.web_port}")
    print(dev_login.login_url(base, ticket))
    print(f"(signs one browser in once, within {dev_login.TICKET_SECONDS // 60} minutes; only where the web tier "
          "runs with MINYI_DEV_SECRETS)", file=sys.stderr)
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

    from minyi.servers import operator_nats_options
    from shared.db import Database
    from shared.settings import redacted_url

    settings = get_settings()
    url = settings.database_url or f"postgresql+asyncpg://postgres@127.0.0.1:{settings.postgres_port}/minyi"
    # Without a URL: the embedded stack of `minyi up`, like the database above.
    nats_url = settings.nats_url or f"nats://127.0.0.1:{settings.nats_port}"
    rebuild = importlib.import_module(f"services.{args.service}.rebuild").rebuild

    async def refused(exc: Exception) -> None:
        # A request the server refuses gets no answer at all; say why before the wait runs out.
        if "permissions violation" in str(exc).lower():
            print(f"error: NATS refused this user: {exc} (rebuilding needs the ops user)", file=sys.stderr)

    async def run() -> int:
        db = Database.connect(url, application_name=f"minyi-rebuild-{args.service}", pool_size=2)
        try:
            nc = await nats.connect(nats_url, name=f"minyi-rebuild-{args.service}", connect_timeout=5,
                                    max_reconnect_attempts=3, error_cb=refused, **operator_nats_options(settings))
        except Exception as exc:
            print(f"error: cannot reach NATS at {redacted_url(nats_url)}: {type(exc).__name__}: {exc}",
                  file=sys.stderr)
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

    if args.service == "web":
        from services.web.service import serve as serve_web

        serve_web()
        return 0
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


# The NATS users of deploy/k8s; `minyi up` gives its embedded server the same block.
NATS_AUTH_FILE = Path(__file__).resolve().parent.parent / "deploy/k8s/components/nats-auth/nats-auth.conf"


def _outside_users(args: argparse.Namespace) -> dict[str, list[str]]:
    """The grid platforms and registry sources that get NATS users: from the command line, else settings."""
    from shared.nats_permissions import outside_ids

    settings = get_settings()
    return {"grid_platforms": outside_ids(args.grid_platform, settings.nats_grid_platforms),
            "registry_sources": outside_ids(args.registry_source, settings.nats_registry_sources)}


def _cmd_nats_auth(args: argparse.Namespace) -> int:
    from shared import nats_permissions

    try:
        users = nats_permissions.users(nats_permissions.service_specs(), **_outside_users(args))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    text = nats_permissions.render(users)
    if args.print:
        sys.stdout.write(text)
        return 0
    if args.check:
        if not NATS_AUTH_FILE.exists() or NATS_AUTH_FILE.read_text() != text:
            print(f"{NATS_AUTH_FILE} differs from the services' wiring; run `minyi nats-auth` and commit it",
                  file=sys.stderr)
            return 1
        return 0
    NATS_AUTH_FILE.write_text(text)
    print(f"wrote {NATS_AUTH_FILE}")
    return 0


def _operator_command(work: Callable[[], Awaitable[int]]) -> int:
    """Run an operator command; a refusal is one line on stderr and its exit code, not a traceback."""
    import asyncio

    from minyi import dead_letters, pii_keys

    try:
        return asyncio.run(work())
    except (dead_letters.Refused, pii_keys.Refused) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code


def _say(line: str) -> None:
    print(line, flush=True)


def _cmd_dead_letters(args: argparse.Namespace) -> int:
    from minyi import dead_letters as dl

    settings = get_settings()
    if args.action == "list":
        services = [args.service] if args.service else list(SERVICES)
        return _operator_command(lambda: dl.run_list(settings, services, consumer_name=args.consumer,
                                                     as_json=args.json, say=_say))
    if args.action == "show":
        return _operator_command(lambda: dl.run_show(settings, args.service, args.id, as_json=args.json, say=_say))
    run = dl.run_replay if args.action == "replay" else dl.run_discard
    return _operator_command(lambda: run(settings, args.service, args.ids, every=args.all,
                                         consumer_name=args.consumer, dry_run=args.dry_run, say=_say))


def _cmd_outbox(args: argparse.Namespace) -> int:
    from minyi import outbox_cmd

    settings = get_settings()
    if args.action == "list":
        services = [args.service] if args.service else list(SERVICES)
        return _operator_command(lambda: outbox_cmd.run_list(settings, services, as_json=args.json, say=_say))
    return _operator_command(lambda: outbox_cmd.run_release(settings, args.service, args.event_ids, every=args.all,
                                                            say=_say))


def _cmd_hotspots(args: argparse.Namespace) -> int:
    from minyi import hotspot_export

    settings = get_settings()
    return _operator_command(lambda: hotspot_export.run(settings, since=args.since, out=args.out, say=_say,
                                                        tell=lambda line: print(line, file=sys.stderr)))


def _cmd_pii_keys(args: argparse.Namespace) -> int:
    from minyi import pii_keys as pk

    settings = get_settings()

    async def run() -> int:
        if args.action == "create":
            return pk.run_create(args.out, _say)
        if args.action == "rotate":
            return pk.run_rotate(args.file, stage=args.stage, key_id=args.key_id, say=_say)
        if args.action == "activate":
            return pk.run_activate(args.file, args.key_id, _say)
        if args.action == "reencrypt":
            return await pk.reencrypt_stored(settings, args.services, keys=args.keys, batch=args.batch,
                                             dry_run=args.dry_run, say=_say)
        return await pk.retire_key(settings, args.file, args.key_id, _say)

    return _operator_command(run)


def _cmd_init_secrets(args: argparse.Namespace) -> int:
    from minyi import init_secrets as init

    async def run() -> int:
        try:
            users = init.nats_permissions(**_outside_users(args))
        except ValueError as exc:
            raise init.Refused(str(exc)) from None
        return init.init_secrets(args.directory, dev_jwt=args.dev_jwt, users=users, say=_say)

    return _operator_command(run)


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number")
    return number


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value} is not a day (YYYY-MM-DD)") from None


def _add_operator_commands(sub: Any) -> None:
    letters = sub.add_parser("dead-letters", help="list, show, replay or discard the events consumers set aside")
    letters_sub = letters.add_subparsers(dest="action", required=True)
    listing = letters_sub.add_parser("list", help="dead letters of one service or of all, oldest first")
    listing.add_argument("service", nargs="?", choices=SERVICES, metavar="SERVICE",
                         help=f"any of {', '.join(SERVICES)} (default: all)")
    listing.add_argument("--consumer", help="only those of this consumer (durable name)")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(func=_cmd_dead_letters)
    show = letters_sub.add_parser("show", help="one dead letter with its error and original message")
    show.add_argument("service", choices=SERVICES, metavar="SERVICE")
    show.add_argument("id", type=_positive, metavar="ID")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(func=_cmd_dead_letters)
    for action, text in (("replay", "apply the original events again through the consumer that failed them, "
                                    "then remove the dead letters"),
                         ("discard", "remove dead letters without applying them")):
        cmd = letters_sub.add_parser(action, help=text)
        cmd.add_argument("service", choices=SERVICES, metavar="SERVICE")
        cmd.add_argument("ids", nargs="*", type=_positive, metavar="ID")
        cmd.add_argument("--all", action="store_true", help="every dead letter of the service (or of --consumer)")
        cmd.add_argument("--consumer", help="only those of this consumer (durable name)")
        cmd.add_argument("--dry-run", action="store_true", help="say what would be done, change nothing")
        cmd.set_defaults(func=_cmd_dead_letters)

    outbox = sub.add_parser("outbox", help="events a relay set aside because NATS would never take them")
    outbox_sub = outbox.add_subparsers(dest="action", required=True)
    listing = outbox_sub.add_parser("list", help="set-aside events of one service or of all, with why")
    listing.add_argument("service", nargs="?", choices=SERVICES, metavar="SERVICE",
                         help=f"any of {', '.join(SERVICES)} (default: all)")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(func=_cmd_outbox)
    freed = outbox_sub.add_parser("release", help="put set-aside events back in line once the cause is fixed")
    freed.add_argument("service", choices=SERVICES, metavar="SERVICE")
    freed.add_argument("event_ids", nargs="*", metavar="EVENT_ID")
    freed.add_argument("--all", action="store_true", help="every set-aside event of the service")
    freed.set_defaults(func=_cmd_outbox)

    spots = sub.add_parser("hotspots", help="what people decided about hotspots (共性事项)")
    spots_sub = spots.add_subparsers(dest="action", required=True)
    corrections = spots_sub.add_parser("corrections", help="the hotspots staff split, merged or converted, as JSONL "
                                                           "in the format of tests/data/routing/hotspots_v2")
    corrections.add_argument("--since", type=_day, metavar="DATE", help="corrections from this day on (YYYY-MM-DD)")
    corrections.add_argument("--out", type=Path, metavar="FILE", help="a new file to write (default: stdout)")
    corrections.set_defaults(func=_cmd_hotspots)

    keys = sub.add_parser("pii-keys", help="create and rotate the keyring of personal data; re-encrypt stored data")
    keys_sub = keys.add_subparsers(dest="action", required=True)
    create = keys_sub.add_parser("create", help="write a new keyring file (0600) for a new installation")
    create.add_argument("--out", type=Path, required=True, metavar="FILE", help="where to write it (must not exist)")
    create.set_defaults(func=_cmd_pii_keys)
    rotate = keys_sub.add_parser("rotate", help="add a new data key and make it current; old keys stay for reading")
    rotate.add_argument("file", type=Path, metavar="FILE")
    rotate.add_argument("--stage", action="store_true",
                        help="add the key without making it current yet (see `activate`)")
    rotate.add_argument("--key-id", help="id of the new key (default: k<n+1>)")
    rotate.set_defaults(func=_cmd_pii_keys)
    activate = keys_sub.add_parser("activate", help="make a staged key the current one")
    activate.add_argument("file", type=Path, metavar="FILE")
    activate.add_argument("key_id", metavar="KEY_ID")
    activate.set_defaults(func=_cmd_pii_keys)
    reencrypt = keys_sub.add_parser("reencrypt", help="rewrite every stored blob that is not under the current key")
    reencrypt.add_argument("services", nargs="*", metavar="SERVICE", help="default: every service with personal data")
    reencrypt.add_argument("--batch", type=int, default=500, help="rows per transaction (default 500)")
    reencrypt.add_argument("--keys", type=Path, metavar="FILE",
                           help="the keyring (default: MINYI_PII_KEYS_FILE, else the embedded stack's)")
    reencrypt.add_argument("--dry-run", action="store_true", help="print the counts by key id, write nothing")
    reencrypt.set_defaults(func=_cmd_pii_keys)
    retire = keys_sub.add_parser("retire", help="remove an old data key once no stored blob uses it")
    retire.add_argument("file", type=Path, metavar="FILE")
    retire.add_argument("key_id", metavar="KEY_ID")
    retire.set_defaults(func=_cmd_pii_keys)


def _outside_user_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--grid-platform", action="append", metavar="ID",
                        help="a NATS user grid-ID for the grid platform ID on the nats transport; repeat for "
                             "several (default: MINYI_NATS_GRID_PLATFORMS, comma-separated)")
    parser.add_argument("--registry-source", action="append", metavar="SOURCE",
                        help="a NATS user registry-SOURCE for that provincial registry; repeat for several "
                             "(default: MINYI_NATS_REGISTRY_SOURCES, comma-separated)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="minyi", description="Minyi (民意): deputies' liaison platform")
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="start the embedded servers, the five services and the web pages in the foreground")
    up.add_argument("--demo", action="store_true", help="load a demo county and a grid-platform simulator")
    up.set_defaults(func=_cmd_up)

    token = sub.add_parser("token", help="print a development JWT that the running stack accepts")
    token.add_argument("--role", action="append", required=True, help="a role; repeat for several")
    token.add_argument("--region", default="", help="administrative code prefix the caller may see")
    token.add_argument("--deputy", help="deputy id (for role deputy)")
    token.add_argument("--unit", help="handling unit id (for role unit)")
    token.add_argument("--source", action="append", choices=("population", "social_security", "migrant"),
                       help="a registry source an integration may write; repeat for several")
    token.add_argument("--sub", help="subject; defaults to the deputy, unit or role")
    token.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds (default 3600)")
    token.add_argument("--key", type=Path, help="the signing key (default: the embedded stack's, made on first use)")
    token.set_defaults(func=_cmd_token)

    login = sub.add_parser("login-url", help="print a one-time URL that signs a browser in to the workbench "
                                              "(development secrets only)")
    login.add_argument("--role", action="append", required=True,
                       help="deputy, station_staff, unit, npc_staff or admin; repeat for several")
    login.add_argument("--region", default="", help="administrative code prefix the person works for")
    login.add_argument("--deputy", help="deputy id (for role deputy)")
    login.add_argument("--unit", help="handling unit id (for role unit)")
    login.add_argument("--name", help="the name the pages show (default: the deputy, unit or role)")
    login.add_argument("--next", help="the page to open (default /work, or /console for staff and admins)")
    login.add_argument("--key", type=Path, help="the signing key (default: the embedded stack's, as for token)")
    login.set_defaults(func=_cmd_login_url)

    migrate = sub.add_parser("migrate", help="bring service schemas to the latest migration")
    migrate.add_argument(
        "services", nargs="*", metavar="SERVICE", help=f"any of {', '.join(SERVICES)} (default: all)"
    )
    migrate.set_defaults(func=_cmd_migrate)

    rebuild = sub.add_parser("rebuild", help="rebuild a service's projection from its event stream (idempotent)")
    rebuild.add_argument("service", choices=REBUILDABLE)
    rebuild.set_defaults(func=_cmd_rebuild)

    serve = sub.add_parser("serve", help="run one service (what the container image runs)")
    serve.add_argument("service", choices=(*SERVICES, "web"))
    serve.set_defaults(func=_cmd_serve)

    docs = sub.add_parser("docs", help="generate docs/openapi/<service>.json and docs/asyncapi.yaml")
    docs.add_argument("--check", action="store_true", help="fail when the committed documents differ")
    docs.set_defaults(func=_cmd_docs)

    auth = sub.add_parser("nats-auth", help="generate the NATS users and permissions of deploy/k8s from the services")
    what = auth.add_mutually_exclusive_group()
    what.add_argument("--check", action="store_true", help="fail when the committed file differs")
    what.add_argument("--print", action="store_true", help="print the authorization block instead of writing it")
    _outside_user_options(auth)
    auth.set_defaults(func=_cmd_nats_auth)

    secrets = sub.add_parser("init-secrets", help="make the secret files a new deployment needs (never overwrites)")
    secrets.add_argument("directory", type=Path, help="where to write them (an existing directory)")
    secrets.add_argument("--dev-jwt", action="store_true",
                         help="also a token signing key pair, for a stack without an identity provider")
    _outside_user_options(secrets)
    secrets.set_defaults(func=_cmd_init_secrets)

    _add_operator_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    sys.exit(args.func(args))


if __name__ == "__main__":
    main()
