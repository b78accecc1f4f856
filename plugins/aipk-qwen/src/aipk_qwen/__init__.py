"""aipk-qwen: Qwen's OAuth portal (``qwen``) and Alibaba DashScope (``dashscope``) for aipk.

Installing the package registers the plugin (entry point ``aipk.plugins: qwen``); use it
through ``aipk.Client("qwen")`` or ``aipk.Client("dashscope")``. Wire work is aipk-openai's;
`aipk_qwen.oauth` holds the OAuth constants, the login flow and the ``resource_url`` rule
(`base_url_for()` a credential),
`aipk_qwen.limits` the rate-limit header parser.
"""

from __future__ import annotations

from .limits import parse_rate_limits
from .oauth import base_url_for, base_url_for_resource
from .plugin import DASHSCOPE, QWEN, effective_base_url

__all__ = ["DASHSCOPE", "QWEN", "base_url_for", "base_url_for_resource", "effective_base_url",
           "parse_rate_limits"]
__version__ = "0.1.0"
