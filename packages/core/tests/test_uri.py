"""Credentials in URIs never reach text people read."""

from __future__ import annotations

import pyarrow.fs as pafs
import pytest

from tideflow.core.errors import ConfigError
from tideflow.core.uri import open_uri, redact


def test_userinfo_of_a_uri_is_masked():
    assert redact("s3://KEY:SECRET@bucket/a.mp4") == "s3://***@bucket/a.mp4"


def test_secret_query_parameters_are_masked_and_the_others_kept():
    text = "s3://b/k?endpoint_override=h:9000&access_key=AK&Secret=S&session_token=T#frag"
    assert redact(text) == (
        "s3://b/k?endpoint_override=h:9000&access_key=***&Secret=***&session_token=***#frag"
    )


def test_every_uri_in_a_message_is_masked():
    text = "cannot copy hdfs://u:p@nn/a to gs://x:y@b/c?password=pw (denied)"
    assert redact(text) == "cannot copy hdfs://***@nn/a to gs://***@b/c?password=*** (denied)"


def test_text_without_credentials_is_unchanged():
    for text in ("/data/videos/a.mp4", "file:///tmp/a b.mp4", "an @ sign and key=value"):
        assert redact(text) == text


def test_open_uri_opens_a_relative_local_path_as_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    filesystem, path = open_uri("out/")
    assert isinstance(filesystem, pafs.LocalFileSystem)
    assert path == str(tmp_path / "out")


def test_open_uri_names_the_owner_and_never_the_credentials():
    with pytest.raises(ConfigError) as caught:
        open_uri("nosuchscheme://KEY:SECRET@host/x", owner="ParquetSink")
    message = str(caught.value)
    assert message.startswith("ParquetSink: cannot open 'nosuchscheme://***@host/x'")
    assert "SECRET" not in message
    assert caught.value.__context__ is None
