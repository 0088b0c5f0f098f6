"""Helpers shared by the credential tests: log in, read the stores."""

from __future__ import annotations

from pathlib import Path

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


def hide_packages(root: Path, *names: str, error: str | None = None) -> Path:
    """Write packages under root that fail to import; return root.

    By default each raises ModuleNotFoundError for its own name, as a
    package that is not installed does.  error is other code to raise
    instead, such as a damaged binding's ImportError.
    """
    for name in names:
        (root / name).mkdir(parents=True)
        raise_line = error or (
            f"raise ModuleNotFoundError('{name} is hidden for this test', "
            f"name='{name}')"
        )
        (root / name / "__init__.py").write_text(raise_line + "\n")
    return root
