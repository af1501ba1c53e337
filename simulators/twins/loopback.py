"""A device twin served in-process: a driver's transport talks straight to the twin's protocol handler.

No pty, no socket, no thread: the bytes a driver writes are split into requests and answered at once (through
the same fault plan, request log and injected-fault record as `TwinServer`), and the answer waits in the link
for the driver to read. Time is the loopback's `clock`: a late answer becomes readable `late_s` after it was
asked, and a read that finds nothing waits one poll period on that clock, as a serial port's read timeout does.
With a `ManualClock` shared by the driver, the link and the twin's bench, a timeout, a back-off or a heating
ramp costs no wall time, and every run is the same to the byte.

    wall = ManualClock()
    bench = Bench(time_scale=600, seed=0, wall_clock=wall)
    with LoopbackTwin(IkaNamurTwin(bench), name="hotplate", clock=wall) as twin:
        driver = IkaNamurHotplate(twin.url, opener=twin.open_link, clock=twin.clock)

What it leaves out, on purpose: line settings (baud rate, parity) and the operating system's part of a line
(buffers, a pty's hang-up, a TCP reset). Those are tested over real ptys and sockets (`TwinServer`). And time a
twin spends inside `handle` (a balance waiting for stability, a meter integrating) passes before the driver starts
waiting for the answer, so a timeout that must cover the device's own processing time is tested over a real pty.
A manual clock is shared by everything that sleeps on it: use it where one thread drives the twins.
"""

from __future__ import annotations

from instruments.clock import Clock, ManualClock
from instruments.transport import POLL_S, SerialSettings
from simulators.twins.server import FaultPlan, TwinEndpoint, TwinProtocol


class LineDropped(OSError):
    """The twin dropped the line (a `disconnect` fault), or the link was closed: what a pulled cable raises."""


class LoopbackLink:
    """One open connection to a LoopbackTwin, shaped like the part of pyserial's `Serial` a transport uses."""

    def __init__(self, twin: LoopbackTwin) -> None:
        self._twin = twin
        self._clock = twin.clock
        self._request = bytearray()  # bytes written that do not yet end a request
        self._answer = bytearray()  # bytes the twin sent that the driver has not read
        self._late: list[tuple[float, bytes]] = []  # answers still on their way: (due time, bytes)
        self._open = True
        self._dropped = False

    # --- the link's state ---------------------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self._open

    @property
    def in_waiting(self) -> int:
        self._check()
        self._deliver_due()
        return len(self._answer)

    def close(self) -> None:
        self._open = False
        self._late.clear()

    def flush(self) -> None:
        self._check()

    # --- bytes each way -------------------------------------------------------------------------------------------

    def write(self, data: bytes, /) -> int:
        self._check()
        self._request += data
        protocol = self._twin.protocol
        while not self._dropped and (split := protocol.split_request(bytes(self._request))) is not None:
            raw, rest = split
            self._request = bytearray(rest)
            response = self._twin.respond(protocol.decode_request(raw))
            if response.disconnect:
                self._dropped = True  # the rest of what was written is lost with the line
                self._late.clear()
            elif response.late_s is not None:
                self._late.append((self._clock.now() + response.late_s, response.data))
            else:
                self._answer += response.data
        if protocol.drop_partial_on_silence:
            # A driver writes a frame whole; what is left over when it stops writing is a broken frame, which the
            # device drops at the silence that follows.
            self._request.clear()
        return len(data)

    def read(self, size: int = 1) -> bytes:
        self._check()
        self._deliver_due()
        if not self._answer:
            self._wait_one_poll()
        return self._take(min(size, len(self._answer)))

    def read_until(self, expected: bytes = b"\n", size: int | None = None) -> bytes:
        """Up to and including `expected`, at most `size` bytes; after one poll period, whatever has come."""
        self._check()
        self._deliver_due()
        if not self._complete(expected, size):
            self._wait_one_poll()
        end = self._answer.find(expected)
        count = len(self._answer) if end < 0 else end + len(expected)
        if size is not None:
            count = min(count, size)
        return self._take(count)

    # --- internals ------------------------------------------------------------------------------------------------

    def _complete(self, expected: bytes, size: int | None) -> bool:
        return expected in self._answer or (size is not None and len(self._answer) >= size)

    def _wait_one_poll(self) -> None:
        self._clock.sleep(POLL_S)
        self._check()
        self._deliver_due()

    def _deliver_due(self) -> None:
        now = self._clock.now()
        due = [data for at, data in self._late if at <= now]
        self._late = [(at, data) for at, data in self._late if at > now]
        for data in due:
            self._answer += data

    def _take(self, count: int) -> bytes:
        taken = bytes(self._answer[:count])
        del self._answer[:count]
        return taken

    def _check(self) -> None:
        if not self._open:
            raise LineDropped("the link is closed")
        if self._dropped:
            raise LineDropped(f"{self._twin.name}: the line dropped")


class LoopbackTwin(TwinEndpoint):
    """A twin a driver reaches in-process: pass `opener=twin.open_link, clock=twin.clock` to the driver.

    `clock` must be the clock the twin's bench runs on (its `wall_clock`), so that what the driver waits and
    what the twin's physics sees are one time. A `ManualClock` by default.
    """

    def __init__(
        self,
        protocol: TwinProtocol,
        faults: FaultPlan | None = None,
        name: str = "twin",
        clock: Clock | None = None,
    ) -> None:
        super().__init__(protocol, faults, name)
        self.clock: Clock = clock if clock is not None else ManualClock()
        self.url = f"loopback://{name}"
        self.opened = 0  # links opened: a reconnect after a dropped line opens another
        self._links: list[LoopbackLink] = []
        self._stopped = False

    def open_link(self, url: str, settings: SerialSettings) -> LoopbackLink:
        """A `LinkOpener` for the driver's transport: a new connection to this twin (the old ones stay dropped)."""
        if self._stopped:
            raise LineDropped(f"{self.name}: the twin is stopped")
        link = LoopbackLink(self)
        self._links.append(link)
        self.opened += 1
        return link

    def stop(self) -> None:
        self._stopped = True
        for link in self._links:
            link.close()

    def __enter__(self) -> LoopbackTwin:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
