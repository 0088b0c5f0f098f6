"""Helpers shared by the credential tests: log in, read the stores."""

from __future__ import annotations

from fake_youtrack import DEFAULT_TOKEN

import yt


def login(cli, server, token=DEFAULT_TOKEN, *args, env=None):
    """Run ``yt auth login --token-stdin`` for the fake server."""
    return cli(
        "auth", "login", "--base-url", server.url, "--token-stdin", *args,
        input=token + "\n", env=env,
    )


def encrypted_store(yt_home):
    return yt.EncryptedFileStore(
        str(yt_home.data_dir), str(yt_home.config_dir)
    )


def encrypted_tokens(yt_home) -> dict:
    """Return {base URL: token} decrypted from credentials.enc."""
    entries = encrypted_store(yt_home).read_all()
    return {url: value["token"] for url, value in entries.items()}


def config_values(yt_home) -> dict:
    path = yt_home.config_dir / ".env"
    if not path.exists():
        return {}
    return yt.parse_config_text(path.read_text(), str(path))
