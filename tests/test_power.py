"""Energy from an emulated power_supply tree: the sampler script runs for real in a shell, over files the test makes."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from effvit_deploy.bench.power import PowerSample, energy, parse_samples, sampler_script


def _battery(root: Path, *, status: str = "Discharging", current_ua: int = -500000, voltage_uv: int = 4000000,
             power: bool = False) -> None:
    bat = root / "battery"
    bat.mkdir(parents=True)
    (bat / "type").write_text("Battery\n")
    (bat / "status").write_text(status + "\n")
    (bat / "current_now").write_text(f"{current_ua}\n")
    (bat / "voltage_now").write_text(f"{voltage_uv}\n")
    if power:
        (bat / "power_now").write_text("3000000\n")
    usb = root / "usb"
    usb.mkdir()
    (usb / "type").write_text("USB\n")
    (usb / "current_now").write_text("900000\n")  # not the battery: ignored


def _sample_for(root: Path, out: Path, seconds: float = 0.7) -> str:
    proc = subprocess.Popen(["sh", "-c", sampler_script(str(out), 0.05, str(root))])
    time.sleep(seconds)
    proc.kill()
    proc.wait()
    return out.read_text()


@pytest.mark.parametrize("shell_power", [False, True])
def test_sampler_reads_the_battery_and_energy_follows(tmp_path: Path, shell_power: bool) -> None:
    _battery(tmp_path / "ps", power=shell_power)
    samples = parse_samples(_sample_for(tmp_path / "ps", tmp_path / "power.txt"))
    assert len(samples) >= 3
    expected_w = 3.0 if shell_power else 2.0  # power_now 3 W, else |−0.5 A| × 4 V
    assert all(s.watts == pytest.approx(expected_w) for s in samples)
    figure = energy(samples, inferences=100, seconds=0.5)
    assert figure["mean_power_w"] == pytest.approx(expected_w)
    assert figure["energy_per_inference_mj"] == pytest.approx(expected_w * 0.005 * 1000)
    assert "fuel gauge" in figure["method"]


def test_no_figure_when_charging_or_absent(tmp_path: Path) -> None:
    _battery(tmp_path / "ps", status="Charging")
    charging = energy(parse_samples(_sample_for(tmp_path / "ps", tmp_path / "p.txt")), inferences=10, seconds=1)
    assert charging["energy"] is None and "charging" in charging["reason"]
    (tmp_path / "empty").mkdir()
    absent = energy(parse_samples(_sample_for(tmp_path / "empty", tmp_path / "q.txt", 0.3)), inferences=10,
                    seconds=1)
    assert absent["energy"] is None and "power readings" in absent["reason"]
    assert energy([], inferences=1, seconds=1)["reason"].startswith("no battery readings")
    assert energy([PowerSample(1.0, None)] * 2, inferences=1, seconds=1)["energy"] is None
