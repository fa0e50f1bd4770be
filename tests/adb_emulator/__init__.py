"""Emulated Android phones for tests: the real adb client connects to them over 127.0.0.1.

`AdbEmulator(profile)` serves one phone; `PROFILES` holds the phone models (Snapdragon 855, Snapdragon 8 Gen 1).
"""

from .profiles import PROFILES, SM8150, SM8450, Cluster, DeviceProfile
from .server import AdbEmulator, Handshake

__all__ = ["PROFILES", "SM8150", "SM8450", "AdbEmulator", "Cluster", "DeviceProfile", "Handshake"]
