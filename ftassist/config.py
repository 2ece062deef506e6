"""Where ftassist keeps its files, and the few settings read from the environment.

The data dir holds the DuckDB file, runs, uploads and session state. It is chosen so
that a Hugging Face Space with persistent storage keeps everything across restarts
(`/data`), while a local checkout never writes outside its own folder by default.
"""

from __future__ import annotations

import os
from pathlib import Path


def _writable_dir(path: Path) -> bool:
    return path.is_dir() and os.access(path, os.W_OK | os.X_OK)


def data_dir(create: bool = True) -> Path:
    """`$FTASSIST_HOME`, else `/data` when it exists and is writable (a Space), else `./ftassist_data`."""
    env = os.environ.get("FTASSIST_HOME")
    if env:
        path = Path(env).expanduser()
    elif _writable_dir(Path("/data")):
        path = Path("/data") / "ftassist"
    else:
        path = Path.cwd() / "ftassist_data"
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path.resolve() if path.exists() else path


def db_path() -> Path:
    return data_dir() / "ftassist.duckdb"


def runs_dir() -> Path:
    path = data_dir() / "runs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def uploads_dir() -> Path:
    path = data_dir() / "uploads"
    path.mkdir(parents=True, exist_ok=True)
    return path


def sessions_dir() -> Path:
    path = data_dir() / "sessions"
    path.mkdir(parents=True, exist_ok=True)
    return path


def on_space() -> bool:
    """True on a Hugging Face Space (the platform sets SPACE_ID)."""
    return bool(os.environ.get("SPACE_ID"))


# -- deployment settings -------------------------------------------------------------------------

DEFAULT_MAX_UPLOAD = "1gb"


def admin_password() -> str | None:
    """`$FTASSIST_ADMIN_PASSWORD`: when set, everything but the arena needs a login (public deployments)."""
    return os.environ.get("FTASSIST_ADMIN_PASSWORD") or None


def admin_user() -> str:
    """The login name that goes with the admin password (`$FTASSIST_ADMIN_USER`, default `admin`)."""
    return (os.environ.get("FTASSIST_ADMIN_USER") or "admin").strip() or "admin"


def max_upload() -> str:
    """Largest upload the web app accepts, e.g. `1gb`, `200mb` (`$FTASSIST_MAX_UPLOAD`, default 1 GB)."""
    value = (os.environ.get("FTASSIST_MAX_UPLOAD") or DEFAULT_MAX_UPLOAD).strip().lower().replace(" ", "")
    import re

    if not re.fullmatch(r"\d+(b|kb|mb|gb|tb)?", value):
        raise ValueError(f"FTASSIST_MAX_UPLOAD={value!r} is not a size: use a number with b, kb, mb, gb or tb, "
                         "e.g. 500mb.")
    return value


def max_upload_bytes() -> int:
    """`max_upload()` in bytes. It also bounds what a file decodes to (a compressed Parquet file, a Hub
    dataset), not only the bytes sent: a few kilobytes must not become gigabytes in memory."""
    value = max_upload()
    units = {"b": 1, "kb": 1024, "mb": 1024**2, "gb": 1024**3, "tb": 1024**4}
    number = value.rstrip("bkmgt")
    return int(number) * units.get(value[len(number):] or "b", 1)


# -- the arena's voting rules (a public arena must not be rigged): each one a setting -------------

# name: (default, what it limits). `FTASSIST_ARENA_<NAME>` overrides one, e.g. FTASSIST_ARENA_MIN_READ_SECONDS=5.
ARENA_LIMITS: dict[str, tuple[float, str]] = {
    "min_read_seconds": (3.0, "seconds between a battle appearing and a vote that counts"),
    "votes_per_minute_per_address": (60, "votes a minute from one client address that count"),
    "rounds_per_minute": (30, "new rounds and skips a minute per voter"),
    "rounds_per_minute_per_address": (120, "new rounds and skips a minute from one client address"),
    "burst_window_seconds": (120, "how far back the one-sided burst test looks"),
    "burst_min_votes": (8, "decisive votes in that window before the burst test judges"),
    "votes_per_day_per_voter": (300, "votes a day from one voter that count (0: no cap)"),
    "votes_per_day_per_address": (1000, "votes a day from one client address that count (0: no cap)"),
    "daily_min_votes": (30, "decisive votes on one pair in a day before the day's one-sided test judges"),
    "prompt_calls_per_address_per_hour": (20, "upstream model calls an hour for one address's own prompts"),
    "prompt_calls_per_day": (400, "upstream model calls a day for all voters' own prompts (0: own prompts off)"),
    "serve_ttl_minutes": (30, "how long a served battle waits for its vote before it is forgotten"),
    "skip_ttl_days": (30, "how long a skip keeps a battle from being shown to that voter again"),
}
ARENA_CHOICES = {"sign_in": ("off", "optional", "required"), "voter_prompts": ("review", "never")}


def arena_limit(name: str) -> float:
    """`$FTASSIST_ARENA_<NAME>` as a number (>= 0), else the default in `ARENA_LIMITS`."""
    default = ARENA_LIMITS[name][0]
    env = f"FTASSIST_ARENA_{name.upper()}"
    raw = (os.environ.get(env) or "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise ValueError(f"{env}={raw!r} is not a number of at least 0: set it like {env}={default:g} "
                         f"({ARENA_LIMITS[name][1]}).")
    return value


def arena_choice(name: str) -> str:
    """`$FTASSIST_ARENA_SIGN_IN` (off | optional | required: signing in with Hugging Face on a Space) or
    `$FTASSIST_ARENA_VOTER_PROMPTS` (review: voters' own prompts reach others once the admin approves them;
    never: they never do). The first choice is the default."""
    choices = ARENA_CHOICES[name]
    env = f"FTASSIST_ARENA_{name.upper()}"
    value = (os.environ.get(env) or choices[0]).strip().lower()
    if value not in choices:
        raise ValueError(f"{env}={value!r} is not one of {', '.join(choices)}: e.g. {env}={choices[0]}.")
    return value


def arena_sign_in_refusal(arena_only: bool) -> str | None:
    """Why the app must not start with this `FTASSIST_ARENA_SIGN_IN`, or None. Hugging Face sends a voter who
    signed in back to `/login/callback` at the root of the Space, and Gradio's sign-in button sends voters to
    `/login/huggingface` at the root too: both belong to the voting page only when it is served alone; in the
    full app the root is the admin's, so sign-in would fail there (and `required` would close voting)."""
    try:
        mode = arena_choice("sign_in")
    except ValueError as exc:
        return str(exc)
    if mode != "off" and not arena_only:
        return (f"FTASSIST_ARENA_SIGN_IN={mode} needs the voting page served alone: start it with "
                "`python app.py --arena-only` (or FTASSIST_ARENA_ONLY=1), or set FTASSIST_ARENA_SIGN_IN=off.")
    return None


def trusted_proxy_hops() -> int:
    """`$FTASSIST_TRUSTED_PROXY_HOPS`: how many proxies in front of the app append to X-Forwarded-For and are
    trusted to (default 1 on a Hugging Face Space, whose proxy does; else 0: the header is ignored)."""
    raw = (os.environ.get("FTASSIST_TRUSTED_PROXY_HOPS") or "").strip()
    if not raw:
        return 1 if on_space() else 0
    if not raw.isdigit():
        raise ValueError(f"FTASSIST_TRUSTED_PROXY_HOPS={raw!r} is not a whole number: 0 when clients reach the "
                         "app directly, 1 behind one proxy (a Space, nginx).")
    return int(raw)


_HARDWARE: dict | None = None


def _gpus_from_torch() -> list[dict] | None:
    """GPUs as torch sees them, but only when torch is already imported (never import it here: startup cost)."""
    import sys

    torch = sys.modules.get("torch")
    if torch is None:
        return None
    try:
        if not torch.cuda.is_available():
            return []
        return [{"name": torch.cuda.get_device_name(i),
                 "memory_gb": round(torch.cuda.get_device_properties(i).total_memory / 1024**3, 1)}
                for i in range(torch.cuda.device_count())]
    except Exception:  # noqa: BLE001 - a broken driver means no usable GPU
        return []


def _gpus_from_nvidia_smi(timeout: float = 5.0) -> list[dict] | None:
    """GPUs from `nvidia-smi` (None when it is not installed or fails)."""
    import shutil
    import subprocess

    exe = shutil.which("nvidia-smi")
    if not exe:
        return None
    try:
        out = subprocess.run([exe, "--query-gpu=name,memory.total", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=timeout, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    gpus = []
    for line in out.strip().splitlines():
        name, _, mem = line.rpartition(",")
        try:
            gpus.append({"name": name.strip(), "memory_gb": round(float(mem) / 1024, 1)})
        except ValueError:
            continue
    return gpus


def detect_hardware(refresh: bool = False) -> dict:
    """What this machine can train on: {"cuda", "gpus": [{name, memory_gb}], "source", "cpu_count"}.

    Uses torch only when something already imported it, else `nvidia-smi`; cached for the
    process (the answer does not change while the app runs).
    """
    global _HARDWARE
    if _HARDWARE is not None and not refresh:
        return dict(_HARDWARE)
    gpus, source = _gpus_from_torch(), "torch"
    if gpus is None:
        gpus, source = _gpus_from_nvidia_smi(), "nvidia-smi"
    if gpus is None:
        gpus, source = [], "none"
    _HARDWARE = {"cuda": bool(gpus), "gpus": gpus, "source": source, "cpu_count": os.cpu_count() or 1}
    return dict(_HARDWARE)


def hardware_class(hw: dict | None = None) -> str:
    """The Decide questionnaire's hardware answer for this machine: none, consumer_gpu,
    datacenter_gpu (one card of 40 GB or more) or multi_gpu, so the app starts from what is here."""
    gpus = (detect_hardware() if hw is None else hw).get("gpus") or []
    if not gpus:
        return "none"
    if len(gpus) > 1:
        return "multi_gpu"
    return "datacenter_gpu" if (gpus[0].get("memory_gb") or 0) >= 40 else "consumer_gpu"


def hardware_line(hw: dict | None = None) -> str:
    """One sentence for the page header: what runs here and what to use instead."""
    hw = detect_hardware() if hw is None else hw
    gpus = hw.get("gpus") or []
    if not gpus:
        from ftassist.plan import providers  # the paths open today, by date (OpenAI's fine-tuning is winding down)

        return (f"Hardware: CPU only ({hw.get('cpu_count', '?')} cores). QLoRA needs a GPU; "
                f"use LoRA with tiny models (e.g. `tiny-random`) here, or {providers.paths_without_a_gpu()}.")
    names: dict[str, int] = {}
    for g in gpus:
        names[g["name"]] = names.get(g["name"], 0) + 1
    what = ", ".join(f"{n} × {name}" for name, n in names.items())
    mem = min(g.get("memory_gb") or 0 for g in gpus)
    if mem >= 40:
        advice = "LoRA and QLoRA up to large models; full fine-tuning of small and mid-size models."
    elif mem >= 16:
        advice = "LoRA and QLoRA of small and mid-size models; full fine-tuning only of small ones."
    else:
        advice = "QLoRA or LoRA of small models; full fine-tuning will rarely fit."
    return f"Hardware: {what} ({mem:g} GB each). {advice}"
