"""The worker: ``python -m pytest_virtoverhead.guest.worker``.

One long-lived process per environment. It reads requests from a byte stream
(stdin, a tty device such as a VM's second serial port, or a unix socket),
runs them and writes one reply per request. Every reply is JSON (see
:mod:`pytest_virtoverhead.wire.protocol`).

Requests (``op``): ``hello`` (facts about the environment), ``call`` (run a
function once), ``bench`` (time a function), ``session`` (start a pytest
session that collects the given node ids and then serves ``item`` requests
until ``end_session``), ``spawn`` (start a child worker process),
``prepare`` (start several children side by side and open a session in
each), ``collect`` (garbage collection), ``direct`` (take requests over a
unix socket to the host from now on: envs/direct.py), ``reap`` (say why a
child on such a socket ended), ``shutdown``.

The worker writes protocol frames on a private copy of its standard output
and points file descriptor 1 at standard error, so a ``print`` in user code
can never corrupt the stream.
"""

from __future__ import annotations

# The import path is kept lean on purpose: the worker starts on every
# environment start, and inside a TCG guest each module costs tens of
# milliseconds (emulated CPU, files over 9p). Modules needed only by some
# requests (argparse, platform, socket, traceback, importlib.util, typing,
# and measure with its dataclasses) are imported where they are used.
import importlib
import os
import sys

from ..wire.envvars import ENV_NAME_VAR, WATCH_PARENT_VAR, WORKER_ENV_VAR
from ..wire.protocol import MAX_FRAME, NO_REPLY, FrameDecoder, FrameTooLarge, encode, read_message
from .envfacts import facts
from .proctree import become_subreaper, descendants, end_descendants, end_new
from .workerargs import parse_args

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable


# --------------------------------------------------------------------------
# functions by reference


def resolve_function(ref: dict[str, Any]) -> Callable[..., Any]:
    """Find the function named by ``{"module", "qualname", "file"}``.

    A module already imported (a test module inside a pytest session) is
    used as is; otherwise it is imported by name, and failing that loaded
    from its file under the same name.
    """
    modname, qualname, path = ref["module"], ref["qualname"], ref.get("file")
    module = sys.modules.get(modname)
    if module is None:
        try:
            module = importlib.import_module(modname)
        except ImportError:
            if not path:
                raise
            from importlib.util import module_from_spec, spec_from_file_location

            spec = spec_from_file_location(modname, path)
            if spec is None or spec.loader is None:
                raise ImportError(f"cannot load {modname!r} from {path}") from None
            module = module_from_spec(spec)
            sys.modules[modname] = module
            directory = os.path.dirname(os.path.abspath(path))
            if directory not in sys.path:
                sys.path.insert(0, directory)
            spec.loader.exec_module(module)
    obj: Any = module
    for part in qualname.split("."):
        if part == "<locals>":
            raise LookupError(
                f"{modname}.{qualname} is a local function; only functions defined at "
                "module level (or in a class) can be run in an environment"
            )
        obj = getattr(obj, part)
    return obj


def error_payload(exc: BaseException) -> dict[str, Any]:
    import traceback

    return {
        "type": type(exc).__name__,
        "module": type(exc).__module__,
        "message": str(exc),
        "traceback": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
    }


# --------------------------------------------------------------------------
# the serving loop


class Worker:
    def __init__(self, read: Callable[[int], bytes], write: Callable[[bytes], Any]):
        self._read = read
        self._write = write
        self._decoder = FrameDecoder()
        self._pending: list[Any] = []
        self.eof = False
        #: Set by a handler whose process must not serve another request of
        #: the current loop (a test raised KeyboardInterrupt or pytest.exit).
        self.end_loop = False
        self.children: Any = None  # children.Children, on the first spawn
        #: Whether this process is a child subreaper (ensure_subreaper).
        self.subreaper = False
        self._items_run: set[Any] = set()
        self.handlers: dict[str, Callable[[dict], Any]] = {
            "hello": self.handle_hello,
            "call": self.handle_call,
            "bench": self.handle_bench,
            "session": self.handle_session,
            "spawn": self.handle_spawn,
            "prepare": self.handle_prepare,
            "collect": self.handle_collect,
            "direct": self.handle_direct,
            "reap": lambda msg: self._children().reap(msg),
        }
        self._direct: Any = None  # a connection to switch to after the reply

    def recv(self) -> dict | None:
        msg = read_message(self._read, self._decoder, self._pending)
        if msg is None:
            self.eof = True
        return msg

    def send(self, message: dict) -> None:
        try:
            frame = encode(message)
        except FrameTooLarge as exc:
            # Never leave the host waiting for a reply that cannot be sent.
            frame = encode({"id": message.get("id"), "ok": False, "error": {
                "type": "FrameTooLarge", "traceback": "",
                "message": f"the reply cannot be sent back to the host: its {exc.size:,} bytes of JSON exceed "
                           f"the protocol's frame limit of {MAX_FRAME:,} bytes (a result is never cut to fit; "
                           f"captured output is)"}})
        except (TypeError, ValueError) as exc:
            frame = encode({
                "id": message.get("id"),
                "ok": False,
                "error": {
                    "type": "SerializationError",
                    "message": f"the result cannot be sent back to the host as JSON: {exc}",
                    "traceback": "",
                },
            })
        self._write(frame)

    def reply(self, msg_id: Any, result: Any) -> None:
        self.send({"id": msg_id, "ok": True, "result": result})

    def reply_error(self, msg_id: Any, exc: BaseException) -> None:
        self.send({"id": msg_id, "ok": False, "error": error_payload(exc)})

    def serve(self, extra: dict[str, Callable[[dict], Any]] | None = None,
              until: str = "shutdown") -> dict | None:
        """Answer requests until ``until`` arrives (returned) or EOF (None)."""
        handlers = {**self.handlers, **(extra or {})}
        while True:
            msg = self.recv()
            if msg is None:
                return None
            if msg.get("proc"):
                # For a child worker process of this one: relay it.
                self.send(self._children().forward(msg))
                continue
            op = msg.get("op")
            if op == until:
                return msg
            handler = handlers.get(op)
            if handler is None:
                self.send({"id": msg.get("id"), "ok": False, "error": {
                    "type": "ProtocolError", "traceback": "",
                    "message": f"unknown op {op!r} here; known: {sorted(handlers) + [until]}"}})
                continue
            before = self._before_item(msg) if op == "item" else None
            try:
                result = handler(msg)
            except BaseException as exc:  # everything goes back to the host
                if isinstance(exc, KeyboardInterrupt):
                    raise
                self.reply_error(msg.get("id"), exc)
            else:
                if result is not NO_REPLY:
                    self.reply(msg.get("id"), result)
                if self._direct is not None:
                    self._use(self._direct)
            if before is not None:
                end_new(before)
            if self.eof:
                return None
            if self.end_loop:
                self.end_loop = False
                return None

    def _before_item(self, msg: dict) -> list[int] | None:
        """The processes below this one before an ``item`` request whose
        leftovers are to be ended after it (None: not). Not after a test's
        first request here: its module and session fixtures may start
        servers that later calls use (they end with the process); later
        requests' daemons would pile up (51 filled a 256 MiB container)."""
        nodeid = msg.get("nodeid")
        first = nodeid not in self._items_run
        self._items_run.add(nodeid)
        return None if first or not self.subreaper else descendants(os.getpid())

    def ensure_subreaper(self) -> None:
        """Before anything runs user code here: whatever it starts (a
        double-forked daemon included) is re-parented to this process, not
        to init, and ended when the worker exits. (Not at start: ctypes
        costs an environment's worker start ~10 ms natively, more in a TCG
        guest; a worker process pays it anyway for its parent-death signal.)"""
        if not self.subreaper:
            self.subreaper = become_subreaper()

    # -- handlers -----------------------------------------------------------

    def handle_hello(self, msg: dict) -> Any:
        if msg.get("env"):
            os.environ[ENV_NAME_VAR] = str(msg["env"])
        return facts()

    def handle_call(self, msg: dict) -> Any:
        self.ensure_subreaper()
        fn = resolve_function(msg["fn"])
        return fn(*msg.get("args", []), **msg.get("kwargs", {}))

    def handle_bench(self, msg: dict) -> Any:
        self.ensure_subreaper()
        from . import measure

        fn = resolve_function(msg["fn"])
        options = measure.BenchOptions.from_dict(msg.get("options"))
        result = measure.benchmark(fn, tuple(msg.get("args", [])), msg.get("kwargs", {}), options)
        return result.to_dict()

    def handle_collect(self, msg: dict) -> Any:
        """Collect garbage now (before a round, untimed), then gc.freeze()
        the survivors (pytest's, the modules'): a full collection over them
        cost 36 ms natively, ~0.5 s under TCG; frozen ones are not walked again."""
        import gc

        found = gc.collect()
        gc.freeze()
        return found

    def handle_direct(self, msg: dict) -> Any:
        from .children import connect_direct

        self._direct = connect_direct(str(msg["path"]), str(msg["token"]))
        return {"pid": os.getpid()}

    def _use(self, sock: Any) -> None:
        """Take requests over ``sock`` from now on (the reply that said so
        went over the old stream)."""
        self._direct = None
        self._read, self._write = sock.recv, sock.sendall
        self._decoder, self._pending = FrameDecoder(), []

    def _children(self) -> Any:
        """The worker processes this one starts (children.Children), made on first use."""
        self.ensure_subreaper()
        if self.children is None:
            from .children import Children

            self.children = Children()
        return self.children

    def handle_spawn(self, msg: dict) -> Any:
        return self._children().spawn(msg)

    def handle_prepare(self, msg: dict) -> Any:
        return self._children().prepare(msg)

    def close_children(self) -> None:
        if self.children is not None:
            self.children.close()

    def handle_session(self, msg: dict) -> Any:
        self.ensure_subreaper()
        from .itemrunner import run_session

        return run_session(self, msg)


# --------------------------------------------------------------------------
# transports


def _stdio_transport() -> tuple[Callable[[int], bytes], Callable[[bytes], Any]]:
    proto_out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    proto_in = os.fdopen(os.dup(0), "rb", buffering=0)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    return proto_in.read, _writer(proto_out.write)


def _writer(write: Callable[[memoryview], Any]) -> Callable[[bytes], None]:
    def write_all(data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = write(view)
            view = view[n if n is not None else len(view):]
    return write_all


def _device_transport(path: str) -> tuple[Callable[[int], bytes], Callable[[bytes], Any]]:
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
    try:
        import termios
        import tty

        tty.setraw(fd)
        attrs = termios.tcgetattr(fd)
        attrs[3] &= ~termios.ECHO
        termios.tcsetattr(fd, termios.TCSANOW, attrs)
    except Exception:  # noqa: BLE001 - not a tty (a virtio port): nothing to set
        pass
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return (lambda n: os.read(fd, n)), _writer(lambda b: os.write(fd, b))


def _socket_transport(path: str) -> tuple[Callable[[int], bytes], Callable[[bytes], Any]]:
    import socket

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return sock.recv, sock.sendall


def _watch_parent(pid: int) -> None:
    """End this process when ``pid`` stops being its parent (the host's
    pytest was killed while a job ran), polling twice a second in a daemon
    thread. Used where the kernel's parent-death signal cannot be: the host
    starts workers from short-lived threads, and that signal fires when the
    starting thread ends."""
    import threading
    import time

    def watch() -> None:
        while os.getppid() == pid:
            time.sleep(0.5)
        from .proctree import end_descendants

        end_descendants()
        os._exit(1)

    threading.Thread(target=watch, name="virt-parent-watch", daemon=True).start()


#: Set by a VM guest's /init when it starts the worker before the start
#: point, from the initramfs' copy of its start files: the path of a JSON
#: file (envs/vm/prestart.py). The name is initramfs.PRESTART_VAR.
PRESTART_VAR = "VIRTOVERHEAD_PRESTART"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else list(argv))
    os.environ[WORKER_ENV_VAR] = "1"
    prestart = os.environ.pop(PRESTART_VAR, "")
    if prestart:
        # A VM guest's prestarted worker: the serial line stays open across
        # the saved state, so nothing the host sends after it is dropped.
        read, write = _device_transport(args.device)
        from .vmguest import prestart as guest_prestart

        args.cwd = guest_prestart(prestart, read, write) or args.cwd
    from .children import PARENT_DEATH_VAR, die_with_parent

    parent = os.environ.pop(PARENT_DEATH_VAR, "")
    if parent.isdigit():
        die_with_parent(int(parent))
    watch = os.environ.pop(WATCH_PARENT_VAR, None)
    if watch and watch.isdigit():
        _watch_parent(int(watch))
    if args.cwd_hex:
        args.cwd = bytes.fromhex(args.cwd_hex).decode()
    if args.cwd:
        os.chdir(args.cwd)
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    if prestart:
        pass  # the serial line, opened above
    elif args.device:
        read, write = _device_transport(args.device)
    elif args.connect:
        read, write = _socket_transport(args.connect)
    else:
        read, write = _stdio_transport()
    worker = Worker(read, write)
    if parent.isdigit():
        worker.ensure_subreaper()  # a worker process: ctypes is loaded already
    if args.ready:
        sys.stderr.write(args.ready + "\n")
        sys.stderr.flush()
    # An unsolicited frame tells the host the worker is up (useful on a serial
    # line, where the host cannot see the process start).
    ready = {"id": None, "event": "ready", "pid": os.getpid()}
    if prestart:
        ready["prestarted"] = True
    worker.send(ready)
    try:
        last = worker.serve()
    finally:
        worker.close_children()
        if worker.subreaper:
            end_descendants()
    if last is not None:
        worker.reply(last.get("id"), None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
