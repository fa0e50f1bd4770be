"""Result store: append + fsync, resume keys, torn lines, concurrent writers; record round trip."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import threading
import time
from pathlib import Path

import pytest

from effvit_deploy.bench import store as store_module
from effvit_deploy.bench.records import BenchRecord, record_key
from effvit_deploy.bench.store import ResultStore, load_results
from effvit_deploy.errors import InvalidInputError, MissingFileError


def _rec(i: int, *, error: str | None = None, serial: str = "R5CT0001", tail: str | None = None) -> BenchRecord:
    ok = error is None
    return BenchRecord(
        device_serial=serial,
        device={"model": "Galaxy S22", "soc": "sm8450", "android": "14", "abi": "arm64-v8a"},
        model="efficientvit-b1",
        resolution=f"{224 + 32 * i}x{224 + 32 * i}",
        target="tflite",
        precision="fp32",
        artifact_sha256=f"{i:064x}",
        runner="native-benchmark_model",
        threads=4,
        runs=50,
        warmup=10,
        mask="f0",
        stats={
            "median_ms": 10.0 + i,
            "mean_ms": 10.5 + i,
            "p90_ms": 11.0 + i,
            "min_ms": 9.0,
            "max_ms": 13.0,
            "std_ms": 0.4,
            "n": 50,
            "basis": "runner",
        }
        if ok
        else None,
        error=error,
        stderr_tail=tail,
    )


def test_record_round_trip_and_key_stability() -> None:
    rec = _rec(1)
    rec.extra["p95_ms"] = 12.5
    back = BenchRecord.from_json(rec.to_json())
    assert back == rec
    assert "\n" not in rec.to_json()
    assert rec.key == _rec(1).key  # stable across objects
    assert len({_rec(i).key for i in range(5)}) == 5
    other = _rec(1)
    other.threads = 1
    assert other.compute_key() != rec.key
    # the key is exactly record_key over the configuration fields
    assert rec.key == record_key(
        device_serial="R5CT0001",
        device_model="Galaxy S22",
        artifact_sha256=f"{1:064x}",
        model="efficientvit-b1",
        resolution="256x256",
        target="tflite",
        precision="fp32",
        threads=4,
        mask="F0",
        runner="native-benchmark_model",
        runs=50,
        warmup=10,
    )


def test_record_unknown_fields_survive_and_bad_records_are_refused() -> None:
    data = json.loads(_rec(0).to_json())
    data["future_field"] = 3
    assert BenchRecord.from_dict(data).extra["future_field"] == 3
    del data["model"]
    with pytest.raises(InvalidInputError, match="model"):
        BenchRecord.from_dict(data)
    newer = json.loads(_rec(0).to_json()) | {"schema": 99}
    with pytest.raises(InvalidInputError, match="newer"):
        BenchRecord.from_dict(newer)
    with pytest.raises(InvalidInputError, match="target"):
        BenchRecord.from_dict(json.loads(_rec(0).to_json()) | {"target": "coreml"})


def test_append_and_resume_keys(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "sub" / "results.jsonl")
    assert list(store.records()) == [] and store.done_keys() == set()
    good = [_rec(i) for i in range(3)]
    failed = _rec(7, error="DeviceError: device offline", tail="adb: device 'R5CT0001' not found")
    for rec in [*good, failed]:
        store.append(rec)
    loaded = list(ResultStore(store.path).records())
    assert loaded == [*good, failed]
    assert store.done_keys() == {r.key for r in good}  # the error is not done: a re-run retries it
    assert failed.key not in store.done_keys()
    # a later success for the same configuration makes it done
    store.append(_rec(7))
    assert failed.key in store.done_keys()


def test_killed_mid_write_then_resume(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "results.jsonl"
    store = ResultStore(path)
    store.append(_rec(0))
    store.append(_rec(1))
    torn = _rec(2).to_json()
    with open(path, "a") as f:  # the writer dies halfway through a line
        f.write(torn[: len(torn) // 2])
    caplog.set_level(logging.WARNING)
    assert [r.key for r in ResultStore(path).records()] == [_rec(0).key, _rec(1).key]
    assert "incomplete line" in caplog.text
    resumed = ResultStore(path)  # a new sweep process reopens the file
    resumed.append(_rec(2))
    resumed.append(_rec(3))
    keys = [r.key for r in ResultStore(path).records()]
    assert keys == [_rec(i).key for i in range(4)]
    assert resumed.done_keys() == {_rec(i).key for i in range(4)}
    lines = path.read_text().splitlines()
    assert len(lines) == 5 and lines[2] == torn[: len(torn) // 2]  # the torn line is kept, alone on its line


def test_json_that_is_not_a_record_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    path.write_text('{"hello": "world"}\n')
    with pytest.raises(InvalidInputError, match=r"results.jsonl:1"):
        list(ResultStore(path).records())


def test_load_results_merges_files_and_directories(tmp_path: Path) -> None:
    a, b = ResultStore(tmp_path / "a.jsonl"), ResultStore(tmp_path / "d" / "b.jsonl")
    a.append(_rec(0))
    b.append(_rec(1, serial="PIXEL4"))
    b.append(_rec(2, error="boom"))
    merged = load_results([a.path, tmp_path / "d"])
    assert [r.key for r in merged] == [_rec(0).key, _rec(1, serial="PIXEL4").key, _rec(2).key]
    with pytest.raises(MissingFileError):
        load_results([tmp_path / "nope.jsonl"])


def _worker_process(path: str, start: int, count: int) -> None:
    store = ResultStore(path)
    for i in range(start, start + count):
        store.append(_rec(i, tail="x" * 20_000))  # long lines make interleaving likely without the lock


def _chunked_write_all(fd: int, data: bytes) -> None:
    """Write in small pieces with pauses, so writers interleave unless the store's locks serialise them."""
    for start in range(0, len(data), 4096):
        os.write(fd, data[start : start + 4096])
        time.sleep(0.0005)


@pytest.mark.timeout(120)
def test_concurrent_threads_and_processes_do_not_interleave(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_module, "_write_all", _chunked_write_all)  # forked children inherit the patch
    path = tmp_path / "results.jsonl"
    threads = [threading.Thread(target=_worker_process, args=(str(path), 100 * t, 15)) for t in range(3)]
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_worker_process, args=(str(path), 1000 + 100 * p, 15)) for p in range(2)]
    for w in [*threads, *procs]:
        w.start()
    for t in threads:
        t.join()
    for p in procs:
        p.join()
        assert p.exitcode == 0
    lines = path.read_text().splitlines()
    assert len(lines) == 75
    assert all(json.loads(line)["stderr_tail"] == "x" * 20_000 for line in lines)
    assert len(ResultStore(path).done_keys()) == 75
