"""`peirce instruments` (installed drivers and their skills), `peirce twin` (serve a device twin by hand) and
`peirce holds` (who holds the lab's shared instruments, and who waits for them)."""

from __future__ import annotations

import json
import signal
import sys
import threading
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from orchestrator.cli import database, output
from orchestrator.cli.options import DbOption, JsonOption
from orchestrator.errors import SpecError

commands = typer.Typer()


@commands.command("instruments")
def instruments_command(
    driver: Annotated[str | None, typer.Argument(help="Show one driver's actions in full.")] = None,
    as_json: JsonOption = False,
) -> None:
    """List the installed instrument drivers (entry points `peirce.instruments`) and their actions."""
    # Imported here: discovering drivers loads every installed driver package, which `--help` does not need.
    from instruments.errors import InstrumentError
    from instruments.registry import all_drivers, load_driver

    try:
        drivers = {driver: load_driver(driver)} if driver else all_drivers()
    except InstrumentError as exc:
        raise SpecError("driver", exc.message) from None
    described = [cls.describe() for cls in drivers.values()]
    if as_json:
        sys.stdout.write(json.dumps(described, indent=2) + "\n")
        return
    console = output.console()
    for info in described:
        title = escape(f"{info['name']}: {info['title']}")
        table = Table(title=title, title_justify="left", caption=escape(info["manual"]))
        for column in ("action", "arguments", "returns", "re-sent on a lost answer"):
            table.add_column(column)
        for action in info["actions"]:
            arguments = ", ".join(_argument(a) for a in action["arguments"]) or "—"
            returns = ", ".join(f"{k} [{v}]" if v else k for k, v in action["returns"].items()) or "—"
            cells = (action["name"], arguments, returns, "yes" if action["idempotent"] else "never")
            table.add_row(*(escape(cell) for cell in cells))
        console.print(table)


def _argument(argument: dict[str, object]) -> str:
    text = str(argument["name"])
    if argument.get("unit"):
        text += f" [{argument['unit']}]"
    low, high = argument.get("minimum"), argument.get("maximum")
    if low is not None or high is not None:
        text += f" {'' if low is None else low}..{'' if high is None else high}"
    if argument.get("choices"):
        text += " " + "|".join(map(str, argument["choices"]))  # type: ignore[call-overload]
    return text


@commands.command("twin")
def twin_command(
    driver: Annotated[str, typer.Argument(help="Driver whose device twin to serve, e.g. mettler-sics.")],
    tcp: Annotated[int | None, typer.Option("--tcp", help="Serve on this TCP port (0: any free port).")] = None,
    time_scale: Annotated[float, typer.Option("--time-scale", help="Simulated seconds per second.")] = 1.0,
    fault_rate: Annotated[float, typer.Option("--fault-rate", help="Share of requests meeting a fault.")] = 0.0,
    seed: Annotated[int, typer.Option("--seed")] = 0,
) -> None:
    """Serve one device twin on a pty (default) or TCP until Ctrl-C, for trying a driver or a station by hand."""
    # Imported here: the twins load the simulators' surrogates, which `--help` does not need.
    from simulators.twins.bench import Bench
    from simulators.twins.registry import load_twin
    from simulators.twins.server import FaultPlan, TwinServer

    try:
        twin_class = load_twin(driver)
    except KeyError as exc:
        raise SpecError("driver", str(exc.args[0])) from None
    if not 0 <= fault_rate <= 1:
        raise SpecError("--fault-rate", f"{fault_rate} is not between 0 and 1")
    if time_scale <= 0:
        raise SpecError("--time-scale", f"{time_scale} is not positive")
    # The handler is set before the address is printed: whoever reads the address may stop us at once.
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    bench = Bench(time_scale=time_scale, seed=seed)
    server = TwinServer(twin_class(bench), FaultPlan(rate=fault_rate, seed=seed), name=driver)
    url = server.start_tcp(port=tcp) if tcp is not None else server.start_pty()
    console = output.console()
    console.print(f"{driver} twin serving on {url} (Ctrl-C to stop)")
    sys.stdout.flush()
    try:
        done.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        console.print(f"stopped; {len(server.log)} requests served, {len(server.injected)} faults injected")


@commands.command("holds")
def holds_command(db: DbOption = None, as_json: JsonOption = False) -> None:
    """Who holds the lab's shared instruments now, since when, and who waits for them (read-only)."""
    # Imported here: the store loads SQLAlchemy, which `--help` does not need.
    from orchestrator.campaign.holds import current_holds

    with database.for_reading(db).session() as session:
        holds = current_holds(session)
    if as_json:
        rows = [{**h.__dict__, "since": h.since.isoformat()} for h in holds]
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    console = output.console()
    if not holds:
        console.print("no instrument is held or waited for")
        return
    for hold in holds:
        what = "holds" if hold.state == "held" else "waits for"
        console.print(escape(f"{hold.slot}: {hold.who} {what} {hold.instrument} since {hold.since:%H:%M:%S}"))
