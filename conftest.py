"""Settings every package's tests share: property tests are judged by what they find, not by
how fast a loaded machine generates or runs their examples (no deadline, no too-slow check)."""

from hypothesis import HealthCheck, settings

settings.register_profile("aipk", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("aipk")
