"""Test kit for aipk.

* `aipk_testkit.emulator`: a loopback HTTP/1.1 server that speaks provider wire protocols
  (OpenAI chat completions today), scriptable with replies and faults. Standard library only;
  it does not import ``aipk``, so it can test any client.
* `aipk_testkit.conformance`: the provider conformance suite (needs ``aipk-core``).
* `aipk_testkit.fixtures`: read captured provider responses (``tests/fixtures``) and
  replay them through a sans-IO engine built from a plugin (the engine part needs ``aipk-core``).
* `aipk_testkit.pytest_plugin`: the ``aipk_emulator`` fixture, registered via ``pytest11``.
"""

__version__ = "0.1.0"
