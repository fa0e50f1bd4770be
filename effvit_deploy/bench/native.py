"""Command lines for the native benchmark binaries and the parsing of what they print.

One binary per target, taken from the user's `--runner-dir` (flags and output formats:
shared/reference/mobile_benchmark_tools_facts.md sections 1-3):

- tflite     -> LiteRT `benchmark_model --graph=M --num_threads=N --warmup_runs=W --num_runs=R
                --warmup_min_secs=0 --min_secs=S --max_secs=MAX --report_peak_memory_footprint=true
                --memory_footprint_check_interval_ms=1000`: the tool's own stop rule is the harness's (at least R
                runs and S seconds, stop at MAX; MAX defaults to a day since the tool's own default, 150 s, would cut
                runs short); warm-up is exactly W runs. The memory monitor thread reads getrusage once a second
                (the README warns the default 50 ms polling can perturb timings) and ru_maxrss is a high-water mark,
                so the peak it reports after the runs is the process's peak whatever the interval.
- onnx       -> `onnxruntime_perf_test -I -m times -r R -x N -y 1 -e cpu [--min_secs S] [--max_secs MAX] M` (-I
                generates inputs, so no test_data_set folder is needed; the tool does exactly one warm-up run of
                its own, so W is not passed and the record says so; the time flags are ours, passed only when the
                rule has them, so a count-only run works with any build).
- executorch -> `executor_runner --model_path=M --num_executions=W+R --cpu_threads=N [--warmup_executions=W]
                [--min_secs=S] [--max_secs=MAX]` (the first W iterations are warm-up: the parser drops them; the
                three flags are ours, passed only when needed).
Time-based stop rules therefore hold inside every native runner: the record's `stop_rule.applied_by` names the flags.

Commands are argument lists; the device layer quotes them (adb) or runs them without a shell (local), and prefixes
`taskset MASK` and, when shared libraries are shipped in --runner-dir (libonnxruntime.so), `env LD_LIBRARY_PATH=DIR`
(for every native binary: they are pushed to the same folder).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import MissingFileError
from .parsers import ParsedRun, parse_runner_output

BINARIES = {"tflite": "benchmark_model", "onnx": "onnxruntime_perf_test", "executorch": "executor_runner"}
# benchmark_model stops after --max_secs (default 150 s) even if fewer than --num_runs ran: lift the limit.
_BM_MAX_SECS = 24 * 3600
_ORT_WARMUP = 1  # onnxruntime_perf_test always does one warm-up run before the timed ones
_BM_MEMORY_MS = 1000  # benchmark_model's peak-memory polling interval (its default 50 ms may perturb timings)
_STOP_BASIS = {
    "tflite": "runner flags: benchmark_model --num_runs/--min_secs/--max_secs",
    "onnx": "runner flags: onnxruntime_perf_test -r/--min_secs/--max_secs",
    "executorch": "runner flags: executor_runner --num_executions/--warmup_executions/--min_secs/--max_secs",
}


@dataclass(frozen=True)
class NativeRunner:
    """The native binary for one target."""

    target: str
    binary: str  # file name, e.g. "benchmark_model"

    @property
    def kind(self) -> str:
        """Runner name used in records and by `parsers.parse_runner_output`."""
        return f"native-{self.binary}"

    def command(self, binary_path: str, artifact_path: str, *, threads: int, runs: int, warmup: int,
                min_seconds: float = 0.0, max_seconds: float | None = None) -> list[str]:
        """Argument list that runs `artifact_path` with `threads` threads: `warmup` inferences, then timed ones until
        at least `runs` of them took at least `min_seconds`, stopping at `max_seconds` (the harness's stop rule)."""
        if self.target == "tflite":
            top = max_seconds if max_seconds is not None else _BM_MAX_SECS
            return [binary_path, f"--graph={artifact_path}", f"--num_threads={threads}", f"--warmup_runs={warmup}",
                    f"--num_runs={runs}", "--warmup_min_secs=0", f"--min_secs={min_seconds:g}", f"--max_secs={top:g}",
                    "--report_peak_memory_footprint=true", f"--memory_footprint_check_interval_ms={_BM_MEMORY_MS}"]
        timing = [("--min_secs", min_seconds)] if min_seconds > 0 else []
        timing += [("--max_secs", max_seconds)] if max_seconds is not None else []
        if self.target == "onnx":
            return [binary_path, "-I", "-m", "times", "-r", str(runs), "-x", str(threads), "-y", "1", "-e", "cpu",
                    *[a for flag, v in timing for a in (flag, f"{v:g}")], artifact_path]
        if self.target == "executorch":
            extra = [f"--warmup_executions={warmup}"] if warmup > 0 else []
            return [binary_path, f"--model_path={artifact_path}", f"--num_executions={warmup + runs}",
                    f"--cpu_threads={threads}", *extra, *[f"{flag}={v:g}" for flag, v in timing]]
        raise AssertionError(f"no native runner for target {self.target}")

    def stop_rule_basis(self) -> str:
        """How this binary decides its run count (the record's `stop_rule.applied_by`)."""
        return _STOP_BASIS[self.target]

    def timed_gate(self) -> tuple[str, int]:
        """(pattern, n): the binary is in its timed runs while exactly n lines of its output match the pattern
        (benchmark_model prints a `count=` line after the warm-up and another after the timed runs; our runners
        print `Timed runs: begin` and `Timed runs: end`). A power sampler reading the output file uses it."""
        return ("count=", 1) if self.target == "tflite" else ("Timed runs:", 1)

    def parity_command(self, binary_path: str, artifact_path: str, input_path: str, output_path: str, *,
                       threads: int, input_name: str | None, input_shape: list[int]) -> list[str]:
        """Argument list for one inference on `input_path` (raw float32) writing output 0 to `output_path`.

        benchmark_model uses its own flags (--input_layer_value_files takes NAME:FILE, with ':' in the name escaped
        as '\\:'; --output_filepath writes the raw output bytes); our executor_runner and onnxruntime_perf_test take
        --inputs/--output_file and --input_file/--output_file.
        """
        if self.target == "tflite":
            if not input_name:
                raise ValueError("benchmark_model needs the TFLite input tensor name to read an input file")
            name = input_name.replace(":", "\\:")
            return [binary_path, f"--graph={artifact_path}", f"--num_threads={threads}", "--warmup_runs=0",
                    "--num_runs=1", "--warmup_min_secs=0", "--min_secs=0", f"--input_layer={input_name}",
                    "--input_layer_shape=" + ",".join(str(d) for d in input_shape),
                    f"--input_layer_value_files={name}:{input_path}", f"--output_filepath={output_path}"]
        if self.target == "onnx":
            return [binary_path, "-m", "times", "-r", "1", "-x", str(threads), "-y", "1", "-e", "cpu",
                    "--input_file", input_path, "--output_file", output_path, artifact_path]
        if self.target == "executorch":
            return [binary_path, f"--model_path={artifact_path}", "--num_executions=1", f"--cpu_threads={threads}",
                    f"--inputs={input_path}", f"--output_file={output_path}"]
        raise AssertionError(f"no native runner for target {self.target}")

    def effective_warmup(self, warmup: int) -> int:
        """How many warm-up runs the binary really does for a requested `warmup`."""
        return _ORT_WARMUP if self.target == "onnx" else warmup

    def parse(self, stdout: str, stderr: str, *, warmup: int) -> ParsedRun:
        """Parse the run's output (benchmark_model logs to stderr on some builds, so both streams are read).

        Raises:
            RunnerOutputError: the output lacks the numbers (crash, truncated, unknown format).
        """
        return parse_runner_output(self.kind, f"{stdout}\n{stderr}", warmup=warmup)


def native_runner(target: str) -> NativeRunner:
    """The native runner for a target ("tflite", "onnx", "executorch")."""
    return NativeRunner(target, BINARIES[target])


def find_binary(runner_dir: Path | None, target: str) -> Path:
    """The binary for `target` in `runner_dir`.

    Raises:
        MissingFileError: no --runner-dir, or it lacks the binary (the message names the expected path).
    """
    binary = BINARIES[target]
    if runner_dir is None:
        raise MissingFileError(f"no native runner for {target}: pass --runner-dir DIR with {binary} in it")
    path = Path(runner_dir) / binary
    if not path.is_file():
        raise MissingFileError(f"native runner for {target} not found: expected {path} (build or download "
                               f"{binary} for the device's ABI and put it in --runner-dir)")
    return path


def shared_libraries(runner_dir: Path | None) -> list[Path]:
    """`*.so` files next to the binaries (e.g. libonnxruntime.so), pushed with them and put on LD_LIBRARY_PATH."""
    if runner_dir is None or not Path(runner_dir).is_dir():
        return []
    return sorted(p for p in Path(runner_dir).iterdir() if p.is_file() and (p.suffix == ".so" or ".so." in p.name))


def wrap(command: list[str], *, mask: str | None, library_dir: str | None) -> list[str]:
    """Prefix `taskset MASK` (when pinned; outermost, so everything it starts inherits the mask) and
    `env LD_LIBRARY_PATH=DIR` (when shared libraries are shipped next to the binary)."""
    prefix: list[str] = []
    if mask is not None:
        prefix += ["taskset", mask]
    if library_dir is not None:
        prefix += ["env", f"LD_LIBRARY_PATH={library_dir}"]
    return prefix + command
