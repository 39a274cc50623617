"""Fetching `audio_url` http(s) URLs: off by default, allow-listed hosts only, capped in size and time.

Server-side request forgery is the risk, so every hop (redirects included) is checked: the host must
be allow-listed and every address it resolves to must be public. The connection then goes to the
address that was checked (Host header and TLS SNI keep the name), so a DNS answer that changes between
check and connect cannot point the request at a private or loopback address.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx

from server.errors import APIError, bad_request
from server.settings import Settings

MAX_REDIRECTS = 3


def host_allowed(host: str, allowed: list[str]) -> bool:
    """Exact names, or '*.example.com' for any subdomain of example.com."""
    host = host.lower().rstrip(".")
    for entry in allowed:
        entry = entry.lower().rstrip(".")
        if entry.startswith("*.") and host.endswith(entry[1:]):
            return True
        if host == entry:
            return True
    return False


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


async def resolve_public(host: str, port: int, *, param: str) -> str:
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise bad_request(
            f"Could not resolve the host of '{param}'.", param=param, code="audio_url_unreachable"
        ) from exc
    addresses = sorted({info[4][0] for info in infos})
    if not addresses or not all(is_public(a) for a in addresses):
        raise bad_request(
            f"The host of '{param}' resolves to a private, loopback or reserved address.",
            param=param,
            code="audio_url_forbidden",
        )
    return addresses[0]


async def fetch_remote_audio(url: str, settings: Settings, *, param: str) -> bytes:
    if not settings.allow_remote_audio_urls:
        raise bad_request(
            f"Remote audio URLs are disabled on this server; send the audio in '{param}' as a data: URI "
            "or as input_audio (setting SEGPRUNE_ALLOW_REMOTE_AUDIO_URLS).",
            param=param,
            code="remote_audio_disabled",
        )
    limit = settings.max_request_bytes
    try:
        async with asyncio.timeout(settings.remote_audio_timeout_seconds):
            async with httpx.AsyncClient(follow_redirects=False, trust_env=False) as client:
                for _ in range(MAX_REDIRECTS + 1):
                    response_or_next = await _fetch_once(client, url, settings, limit, param=param)
                    if isinstance(response_or_next, bytes):
                        return response_or_next
                    url = response_or_next
    except TimeoutError as exc:
        raise bad_request(
            f"Fetching '{param}' took longer than {settings.remote_audio_timeout_seconds:g} s.",
            param=param,
            code="audio_url_timeout",
        ) from exc
    except httpx.HTTPError as exc:
        raise bad_request(f"Could not fetch '{param}': {exc}.", param=param, code="audio_url_unreachable") from exc
    raise bad_request(f"'{param}' redirected more than {MAX_REDIRECTS} times.", param=param, code="audio_url_redirects")


async def _fetch_once(
    client: httpx.AsyncClient, url: str, settings: Settings, limit: int, *, param: str
) -> bytes | str:
    """The body, or the next URL when the server redirects."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise bad_request(f"'{param}' must be an http(s) URL.", param=param, code="invalid_audio_url")
    if not host_allowed(parts.hostname, settings.allowed_audio_url_hosts):
        raise bad_request(
            f"The host '{parts.hostname}' of '{param}' is not allowed (setting SEGPRUNE_ALLOWED_AUDIO_URL_HOSTS).",
            param=param,
            code="audio_url_forbidden",
        )
    port = parts.port or (443 if parts.scheme == "https" else 80)
    address = await resolve_public(parts.hostname, port, param=param)
    pinned_host = f"[{address}]" if ":" in address else address
    pinned = urlunsplit((parts.scheme, f"{pinned_host}:{port}", parts.path or "/", parts.query, ""))
    headers = {"Host": parts.netloc.rsplit("@", 1)[-1]}
    async with client.stream("GET", pinned, headers=headers, extensions={"sni_hostname": parts.hostname}) as response:
        if response.is_redirect:
            location = response.headers.get("location", "")
            return urljoin(url, location)
        if response.status_code != 200:
            raise bad_request(
                f"Fetching '{param}' returned HTTP {response.status_code}.", param=param, code="audio_url_unreachable"
            )
        declared = response.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise _too_large(param, limit)
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > limit:
                raise _too_large(param, limit)
        return bytes(body)


def _too_large(param: str, limit: int) -> APIError:
    return APIError(
        413,
        f"The audio at '{param}' is larger than {limit} bytes (setting SEGPRUNE_MAX_REQUEST_BYTES).",
        param=param,
        code="request_too_large",
    )
