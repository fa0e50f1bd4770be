"""Batch-1 latency sweeps on this CPU and on phones over adb: devices, runners, sweep engine, results, reports."""
