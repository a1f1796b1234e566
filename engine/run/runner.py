"""Runs one action in the current process: load the rule, decode its inputs from the CAS,
call it with its output directory, encode what it returned and wrote, capture its logs.

Every executor ends up here (a pool worker, a container, a Ray task). It needs a CAS that
holds the inputs, and leaves the outputs in it; it never touches the action cache.
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import inspect
import os
import socket
import sys
import tempfile
import time
import traceback
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec

from mlbuild.cache.cas import CAS
from mlbuild.cache.records import ArtifactRef
from mlbuild.cache.trees import UnsupportedFile, materialize_tree, put_tree
from mlbuild.engine.interfaces import ActionOutcome, ActionSpec, InputSpec
from mlbuild.engine.keys.trace import ActionTrace
from mlbuild.engine.run.live_logs import open_live_log
from mlbuild.engine.time_limit import TimeUp, time_limit
from mlbuild.rules import codecs


class StepInputError(Exception):
    """An input or the config does not fit the rule's signature."""


@contextlib.contextmanager
def capture_output(log: typing.BinaryIO) -> Iterator[None]:
    """Send fd 1 and 2 (so subprocesses and C extensions too) to the file ``log``."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])


_on_path: list[str] = []  # the workspace this process last put on sys.path


def load_rule(spec: ActionSpec) -> Callable[..., Any]:
    """Import the rule's module from the workspace. Project modules were dropped when the trace
    started (``engine/keys/trace.py``), so this imports the code on disk now, whatever an earlier
    action in this process imported."""
    if _on_path != [spec.workspace]:
        # Another workspace's modules must not shadow this one's (an in-process executor).
        for old in _on_path:
            while old in sys.path:
                sys.path.remove(old)
        _on_path[:] = [spec.workspace]
    if spec.workspace not in sys.path:
        sys.path.insert(0, spec.workspace)
    parts = list(Path(spec.rule_file).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    module = importlib.import_module(".".join(parts))
    fn = getattr(module, spec.rule_func)
    return typing.cast(Callable[..., Any], fn)


def _hints(fn: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(fn)
    except Exception:
        return dict(getattr(fn, "__annotations__", {}))


def _wants_path(annotation: Any) -> bool:
    if annotation is Path or annotation is os.PathLike:
        return True
    return any(a is Path for a in typing.get_args(annotation))


def _input_value(inp: InputSpec, annotation: Any, spec: ActionSpec, cas: CAS, work: Callable[[], Path]) -> Any:
    if inp.path is not None:
        return Path(spec.workspace) / inp.path
    refs = {r.name: r for r in inp.refs}
    if _wants_path(annotation) or "value" not in refs:
        if "files" not in refs:
            raise StepInputError(f"input {inp.name!r} is annotated as a Path but its target wrote no files")
        dest = work() / "inputs" / inp.name
        materialize_tree(cas, refs["files"].digest, dest)
        return dest
    ref = refs["value"]
    try:
        return codecs.decode(ref.codec, cas.get_bytes(ref.digest), annotation, spec.options.allow_pickle)
    except (msgspec.ValidationError, codecs.EncodingError) as exc:
        raise StepInputError(f"input {inp.name!r} does not match its annotation {annotation!r}: {exc}") from None


def prepare_arguments(fn: Callable[..., Any], spec: ActionSpec, cas: CAS, work: Callable[[], Path]) -> dict[str, Any]:
    hints = _hints(fn)
    inputs = {i.name: i for i in spec.inputs}
    kwargs: dict[str, Any] = {}
    for name, param in inspect.signature(fn).parameters.items():
        annotation = hints.get(name, Any)
        if name == "config":
            config = spec.config if spec.config is not None else {}
            try:
                kwargs[name] = config if annotation is Any else msgspec.convert(config, annotation)
            except (msgspec.ValidationError, TypeError) as exc:
                raise StepInputError(f"config does not fit {getattr(annotation, '__name__', annotation)}: {exc}") from None
        elif name == "out":
            kwargs[name] = work() / "out"
            kwargs[name].mkdir()
        elif name in inputs:
            kwargs[name] = _input_value(inputs[name], annotation, spec, cas, work)
        elif param.default is inspect.Parameter.empty:
            raise StepInputError(f"the rule needs input {name!r}, which the target does not give")
    unknown = set(inputs) - set(kwargs)
    if unknown:
        raise StepInputError(f"the rule has no parameter for input(s) {', '.join(sorted(unknown))}")
    return kwargs


def _format_error(exc: BaseException, workspace: str) -> str:
    tb = traceback.TracebackException.from_exception(exc)
    # Show the user's frames, not the runner's own.
    frames = [f for f in tb.stack if f.filename.startswith(workspace)]
    tb.stack = traceback.StackSummary.from_list(frames) if frames else tb.stack
    return "".join(tb.format()).rstrip()


def _disk_full(exc: OSError, cas: CAS) -> str:
    return (f"the disk holding the cache ({cas.root.parent}) is full ({exc.strerror}); free space, e.g. "
            "`mlbuild cache gc --max-size 10G`, and build again")


def timeout_message(seconds: float) -> str:
    return f"timed out after {seconds:g}s: the step was stopped (@rule(timeout=...) or --timeout sets the limit)"


# A step stuck inside one long C call does not see the timer's exception; in a worker process
# of its own (``hard_stop``) it is then ended this long after its limit.
HARD_STOP_GRACE = 5.0


@contextlib.contextmanager
def _hard_stop(seconds: float) -> Iterator[None]:
    if seconds <= 0:
        yield
        return
    import signal
    import threading

    finished = threading.Event()

    def watchdog() -> None:
        if not finished.wait(seconds + HARD_STOP_GRACE):
            os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watchdog, name="mlbuild-step-watchdog", daemon=True).start()
    try:
        yield
    finally:
        finished.set()


def run_action(spec: ActionSpec, cas: CAS, hard_stop: bool = False) -> ActionOutcome:
    """Run ``spec``; never raises for a failure of the step itself.

    ``hard_stop``: this process runs nothing but steps (a pool worker), so a step past its
    timeout that the timer cannot interrupt may end the process itself.
    """
    started, clock = time.time(), time.monotonic()
    outcome = ActionOutcome(key=spec.key, started=started, host=socket.gethostname())
    with contextlib.ExitStack() as stack:
        # A named file that grows while the step runs: the UI follows it (engine/run/live_logs.py).
        log = stack.enter_context(open_live_log(cas.tmp, spec.key, spec.label))
        # The scratch folder (output dir, materialized inputs) is made only if the step needs it.
        work_dir: list[Path] = []

        def work() -> Path:
            if not work_dir:
                work_dir.append(Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=f"action-p{os.getpid()}-", dir=cas.tmp))))
            return work_dir[0]

        value: Any = None
        limit = spec.options.timeout or 0.0
        declared = [i.path for i in spec.inputs if i.path is not None]
        tracer = ActionTrace(
            spec.workspace,
            declared,
            ignore=[str(cas.root), str(cas.tmp)],
            image=spec.image is not None,
            # The next step of this very rule and code may keep the project modules loaded.
            reuse_key=f"{spec.workspace}:{spec.rule_file}:{spec.key_spec.code}",
        )
        with capture_output(log):
            try:
                with tracer:
                    fn = load_rule(spec)
                    kwargs = prepare_arguments(fn, spec, cas, work)
                    with time_limit(limit), _hard_stop(limit if hard_stop else 0.0):
                        value = fn(**kwargs)
            except StepInputError as exc:
                outcome.error, outcome.error_kind = str(exc), "input"
            except TimeUp:
                outcome.error, outcome.error_kind = timeout_message(limit), "step"
            except OSError as exc:
                if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                    # its scratch folder is in the cache: a full cache disk, not a bug of the step
                    outcome.error, outcome.error_kind = _disk_full(exc, cas), "infra"
                else:
                    outcome.error, outcome.error_kind = _format_error(exc, spec.workspace), "step"
            except Exception as exc:
                outcome.error, outcome.error_kind = _format_error(exc, spec.workspace), "step"
        outcome.trace = tracer.finish()
        changed = tracer.changed_during_run()
        if changed and outcome.error is None:
            # What ran is not what is on disk: storing it under any key would be a lie.
            names = ", ".join(sorted(tracer.rel(p) for p in changed))
            outcome.error = f"{names} changed while the step ran; its result is not stored: build again"
            outcome.error_kind = "infra"
        if outcome.error is None:
            try:
                outcome.outputs = _store_outputs(value, work_dir[0] / "out" if work_dir else None, spec, cas)
                outcome.pickled = any(o.codec == "pickle" for o in outcome.outputs)
            except (codecs.EncodingError, UnsupportedFile) as exc:
                outcome.error, outcome.error_kind = f"its output cannot be encoded: {exc}", "output"
            except OSError as exc:
                outcome.error, outcome.error_kind = _disk_full(exc, cas) if exc.errno in (errno.ENOSPC, errno.EDQUOT) \
                    else f"its outputs could not be stored in the cache: {exc.strerror or exc}", "infra"
        log.seek(0)
        text = log.read()
        if text:
            try:
                outcome.log_digest = cas.put_bytes(text)
            except OSError:  # a full disk: the outcome says so already, the log is lost
                pass
    outcome.finished = time.time()
    outcome.seconds = time.monotonic() - clock  # wall-clock times may step backwards; this cannot
    return outcome


def _store_outputs(value: Any, out_dir: Path | None, spec: ActionSpec, cas: CAS) -> list[ArtifactRef]:
    outputs: list[ArtifactRef] = []
    np = sys.modules.get("numpy")
    if np is not None and isinstance(value, np.ndarray) and value.nbytes > LARGE_ARRAY:
        outputs.append(_store_large_array(value, cas))
    elif value is not None:
        codec, data = codecs.encode(value, spec.options.allow_pickle)
        outputs.append(ArtifactRef("value", cas.put_bytes(data), typing.cast(Any, codec), len(data)))
    if out_dir is not None and out_dir.is_dir() and any(out_dir.iterdir()):
        digest, size = put_tree(cas, out_dir)
        outputs.append(ArtifactRef("files", digest, "tree", size))
    return outputs


# A numpy value larger than this is written to its blob file directly (the same bytes as the
# npy codec's), never whole into memory a second time: a 2 GiB array took 4 GiB to store.
LARGE_ARRAY = 32 << 20


def _store_large_array(value: Any, cas: CAS) -> ArtifactRef:
    from mlbuild.cache.digest import digest_file
    from mlbuild.rules.codecs.arrays import write_npy

    tmp = cas.temp_path()
    try:
        with open(tmp, "xb") as f:
            write_npy(value, f)
        digest, size = digest_file(tmp)
        cas.adopt_file(tmp, digest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return ArtifactRef("value", digest, "npy", size)


_encode_outcome = msgspec.msgpack.Encoder()
_decode_spec = msgspec.msgpack.Decoder(ActionSpec)
_cas_cache: dict[str, CAS] = {}


def run_encoded(spec_bytes: bytes, cas_root: str) -> bytes:
    """Entry point for worker processes: msgpack in, msgpack out (no pickled Structs)."""
    cas = _cas_cache.get(cas_root) or _cas_cache.setdefault(cas_root, CAS(cas_root))
    return _encode_outcome.encode(run_action(_decode_spec.decode(spec_bytes), cas, hard_stop=True))


def run_encoded_with(spec_bytes: bytes, cas: CAS) -> bytes:
    """``run_encoded`` against a CAS object (a container's read-only CAS with a writable overlay)."""
    return _encode_outcome.encode(run_action(_decode_spec.decode(spec_bytes), cas))
