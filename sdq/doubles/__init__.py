"""Test doubles that benchmarks, demos and tests share. Real servers on loopback,
never mocks on a production path.

    fake_hcaptcha   plays hCaptcha's siteverify endpoint
"""

__all__ = [
    "fake_hcaptcha",
]
