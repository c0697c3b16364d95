"""Webhook output (httpx): POST the decision JSON of each FAIL (or every decision) to one URL.

Timeouts, connection errors, 408, 429 and 5xx are retried with a doubling backoff, the decision
staying first in the on-disk queue, so decisions arrive once and in order; any other 4xx is the
endpoint refusing that decision: it is counted as an error, logged once, and not sent again.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ard_edge.errors import MissingDependency
from ard_edge.runtime.decision import FAIL
from ard_edge.runtime.outputs_config import WebhookConfig, secret
from ard_edge.runtime.sinks.outbox import ForwardingSink

log = logging.getLogger(__name__)

_RETRIED_STATUS = (408, 429)  # plus every 5xx


class WebhookSink(ForwardingSink):
    """POST decisions from the sink's own thread and queue; see the module docstring."""

    def __init__(self, config: WebhookConfig, out_dir: str | Path):
        super().__init__("webhook", out_dir, config.queue.max_decisions, config.queue.drain_s)
        self.config = config
        self._headers = {"Content-Type": "application/json"}
        if token := secret(config.token_env):
            self._headers["Authorization"] = f"Bearer {token}"

    def wants(self, decision) -> bool:
        if self.config.send == "all":
            return True
        return decision.verdict == FAIL or (self.config.send == "reject" and decision.reject)

    def deliver_loop(self) -> None:
        try:
            import httpx
        except ImportError as exc:
            raise MissingDependency("outputs.webhook needs httpx: pip install 'ard-edge[outputs]'") from exc
        with httpx.Client(timeout=self.config.timeout_s, headers=self._headers) as client:
            while True:
                rows = self.queue.peek(1)
                if self.should_stop(not rows):
                    return
                if not rows:
                    self.wake.wait(0.5)
                    self.wake.clear()
                    continue
                if not self._send_with_retries(client, httpx, *rows[0]):
                    return  # closing: the decision stays queued

    def _send_with_retries(self, client, httpx, row_id: int, body: str) -> bool:
        """POST one decision until it is accepted or refused; False when close() cut the retries short."""
        delay_s = self.config.backoff_initial_s
        while True:
            try:
                response = client.post(self.config.url, content=body)
            except httpx.HTTPError as exc:  # timeouts and connection errors
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if response.is_success:
                    self.counts["delivered"] += 1
                    self.queue.remove([row_id])
                    return True
                problem = f"HTTP {response.status_code} {response.reason_phrase}"
                if response.status_code < 500 and response.status_code not in _RETRIED_STATUS:
                    self.counts["errors"] += 1
                    self.warn_once(str(response.status_code), f"outputs.webhook: {self.config.url} refused a"
                                    f" decision ({problem}); such decisions are not sent again"
                                    + (f": check {self.config.token_env}" if response.status_code in (401, 403) else ""))
                    self.queue.remove([row_id])
                    return True
            self.counts["errors"] += 1
            self.warn_once("retry", f"outputs.webhook: {self.config.url}: {problem}; retrying with backoff"
                            " (decisions queue on disk meanwhile)")
            if self.pause(delay_s):
                return False
            delay_s = min(2 * delay_s, self.config.backoff_max_s)
