"""An S3 bucket (or a folder of one) as a source, on AWS or any S3-compatible server (MinIO, Ceph ...).

boto3 is an optional extra (``lamina[s3]``). Credentials come from the environment variables the spec
names or from a secrets file; with the default names boto3's own chain applies (a session token, a
profile, an instance role). Object tags become ``tag.<Key>`` attributes, so a collection can filter on
them. Secrets are masked out of every message.
"""

from __future__ import annotations

import mimetypes
import os
from collections.abc import Iterator
from pathlib import PurePosixPath
from typing import Any

from lamina.data.connectors.base import Entry, SourceError, env_secret, iso_utc, mask, read_secrets
from lamina.data.connectors.spec import S3Spec
from lamina.data.fetch import check_target
from lamina.errors import FetchRefused

_DEFAULT_ENVS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")


class S3Connector:
    kind = "s3"

    def __init__(self, spec: S3Spec, allow_private: bool = False, timeout_s: float = 20.0) -> None:
        try:
            import boto3  # noqa: F401
        except ImportError:
            raise SourceError("S3 sources need boto3: pip install 'lamina[s3]'") from None
        self.spec, self.allow_private, self.timeout_s = spec, allow_private, timeout_s
        self.prefix = spec.prefix.strip("/") + "/" if spec.prefix.strip("/") else ""
        self.scope = f"s3://{spec.bucket}/{self.prefix}" + (
            f" at {spec.endpoint_url}" if spec.endpoint_url else ""
        )
        self._secrets: list[str] = []
        self._client: Any = None

    def _credentials(self) -> dict[str, str]:
        spec = self.spec
        if spec.secrets_file is not None:
            found = read_secrets(spec.secrets_file, ("access_key", "secret_key"), "s3")
            pair = (found["access_key"], found["secret_key"])
        elif (spec.access_key_env, spec.secret_key_env) == _DEFAULT_ENVS:
            self._secrets = [os.environ.get(n, "") for n in (*_DEFAULT_ENVS, "AWS_SESSION_TOKEN")]
            return {}  # boto3's chain: these variables, AWS_SESSION_TOKEN, a profile, an instance role
        else:
            pair = (
                env_secret(spec.access_key_env, "s3", "access_key_env"),
                env_secret(spec.secret_key_env, "s3", "secret_key_env"),
            )
        self._secrets = list(pair)
        return {"aws_access_key_id": pair[0], "aws_secret_access_key": pair[1]}

    def _s3(self) -> Any:
        if self._client is None:
            import boto3
            from botocore.config import Config

            if self.spec.endpoint_url:
                try:
                    check_target(self.spec.endpoint_url, self.allow_private)
                except FetchRefused as exc:
                    raise SourceError(f"s3: {exc}") from None
            config = Config(
                connect_timeout=self.timeout_s,
                read_timeout=self.timeout_s,
                retries={"max_attempts": 3, "mode": "standard"},
                s3={"addressing_style": "path"} if self.spec.endpoint_url else None,
            )
            self._client = boto3.session.Session().client(
                "s3",
                endpoint_url=self.spec.endpoint_url,
                region_name=self.spec.region,
                config=config,
                **self._credentials(),
            )
        return self._client

    def _error(self, doing: str, exc: Exception) -> SourceError:
        from botocore.exceptions import ClientError

        if isinstance(exc, ClientError):
            err = exc.response.get("Error", {})
            why = f"{err.get('Code', 'error')}: {err.get('Message', '')}".rstrip(": ")
        else:
            why = f"{type(exc).__name__}: {exc}"
        return SourceError(mask(f"s3: {doing} {self.scope}: {why}", self._secrets))

    def _tags(self, key: str) -> dict[str, str] | None:
        """The object's tags as ``tag.<Key>`` attributes; None when the object is gone."""
        from botocore.exceptions import ClientError

        try:
            found = self._s3().get_object_tagging(Bucket=self.spec.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            return {}  # tags not supported by this server, or not allowed to this key
        return {f"tag.{t['Key']}": str(t["Value"]) for t in found.get("TagSet", [])}

    def entries(self) -> Iterator[Entry]:
        from botocore.exceptions import BotoCoreError, ClientError

        base = f"s3://{self.spec.bucket}/"
        try:
            pages = (
                self._s3()
                .get_paginator("list_objects_v2")
                .paginate(Bucket=self.spec.bucket, Prefix=self.prefix)
            )
            for page in pages:
                for obj in page.get("Contents", []):
                    key: str = obj["Key"]
                    if key.endswith("/"):
                        continue  # a folder marker
                    tags = self._tags(key)
                    if tags is None:
                        continue
                    attrs: dict[str, str | int] = {
                        "path": key[len(self.prefix) :],
                        "modified": iso_utc(obj["LastModified"]),
                        "size": int(obj.get("Size", 0)),
                        "etag": str(obj.get("ETag", "")).strip('"'),
                        **tags,
                    }
                    name = PurePosixPath(key).name
                    yield Entry(base + key, name, attrs, mimetypes.guess_type(name)[0] or "")
        except (ClientError, BotoCoreError) as exc:
            raise self._error("cannot list", exc) from None

    def read(self, entry: Entry) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError

        key = entry.location.removeprefix(f"s3://{self.spec.bucket}/")
        try:
            body: bytes = self._s3().get_object(Bucket=self.spec.bucket, Key=key)["Body"].read()
        except (ClientError, BotoCoreError) as exc:
            raise self._error(f"cannot read {key} from", exc) from None
        return body

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
