"""``carehub provision``: a new hub's config and credentials, for an installer on site or a script.

The answers (:mod:`hub.provision.answers`: flags, or prompts with defaults)
become ``hub.toml`` from a template in ``config/examples/``
(:mod:`hub.provision.render`, the template's comments kept) and the hub's
credentials (:mod:`hub.provision.files`): an EC P-256 key and a certificate
request whose CN is the hub id, or a random password file; secrets 0600 and
the service user's. Then the same check as ``carehub check-config`` runs on
the result and the next steps are printed (:mod:`hub.provision.command`).
"""

from hub.provision.command import run_provision

__all__ = ["run_provision"]
