"""``passerelle bench [--quick] --json OUT.json``: every benchmark of issue 8 in one run.

Writes OUT.json (the contract keys below, numbers or null), OUT.md (tables, targets,
board estimate, notes) and OUT.png (chart), and prints the targets with PASS/FAIL.

Contract keys: ``tic.unix_us_per_frame.{historic,standard}``,
``tic.unix_alloc_bytes_per_frame.{historic,standard}``,
``tic.cpython_frames_per_s.{passerelle,teleinfo,enedis_tic,serial_teleinfo}.{historic,standard}``,
``mqtt.{passerelle,chumicro_mqtt,aiomqttc,paho}.{qos0_msgs_per_s,qos1_msgs_per_s,latency_p50_ms,latency_p99_ms}``,
``heap.min_heapsize_bytes``, ``heap.growth_bytes``,
``e2e.{frame_to_state_p50_ms,frame_to_state_p99_ms,command_to_echo_p50_ms,command_to_echo_p99_ms}``.
Everything else (method details, raw figures, targets, board estimate, notes) sits in
the top-level ``targets``, ``board_estimate``, ``notes``, ``details`` and ``meta``.

Full run < 10 min, ``--quick`` < 60 s (smaller samples, coarser heap bisection, heap
growth to frame 1,000 instead of 10,000: the JSON's ``meta`` and notes say so).
"""

import json
import os
import sys
import time
from pathlib import Path

KINDS = ("historic", "standard")
TIC_PEERS = ("passerelle", "teleinfo", "enedis_tic", "serial_teleinfo")
MQTT_CLIENTS = ("passerelle", "chumicro_mqtt", "aiomqttc", "paho")
MQTT_KEYS = ("qos0_msgs_per_s", "qos1_msgs_per_s", "latency_p50_ms", "latency_p99_ms")
E2E_KEYS = ("frame_to_state_p50_ms", "frame_to_state_p99_ms",
            "command_to_echo_p50_ms", "command_to_echo_p99_ms")
PARTS = ("tic.unix", "tic.cpython", "mqtt.passerelle", "mqtt.peers", "heap.min_heapsize",
         "heap.growth", "e2e")
BOARD_FACTOR = 150          # unix port (x86-64) -> ESP32 at 240 MHz (perf-reliability.md §1.3)
BAUD = {"historic": 1200, "standard": 9600}
HEAP_TARGET = 96 * 1024
GROWTH_TOLERANCE = 1024     # perf-reliability.md T2: <= value at frame 100 + 1 KB


def empty_result():
    """The contract skeleton, every figure None."""
    return {
        "tic": {"unix_us_per_frame": dict.fromkeys(KINDS),
                "unix_alloc_bytes_per_frame": dict.fromkeys(KINDS),
                "cpython_frames_per_s": {p: dict.fromkeys(KINDS) for p in TIC_PEERS}},
        "mqtt": {c: dict.fromkeys(MQTT_KEYS) for c in MQTT_CLIENTS},
        "heap": {"min_heapsize_bytes": None, "growth_bytes": None},
        "e2e": dict.fromkeys(E2E_KEYS),
        "targets": [], "board_estimate": {}, "notes": {}, "details": {}, "meta": {},
    }


def _step(res, name, fn, log, parts=None):
    if parts is not None and name not in parts:
        res["notes"].setdefault("skipped", []).append(name)
        return
    t0 = time.monotonic()
    log("bench: %s ..." % name)
    try:
        fn()
    except Exception as e:   # noqa: BLE001 - one failed part leaves its figures null
        res["notes"][name] = "failed: %s: %s" % (type(e).__name__, str(e)[-400:])
        log("bench: %s FAILED: %s" % (name, e))
    res["meta"].setdefault("seconds", {})[name] = round(time.monotonic() - t0, 1)


def run(quick=False, micropython=None, log=None, parts=None):
    """All measurements (or only ``parts``, see PARTS: the others stay null); returns the
    result dict (see module doc)."""
    from passerelle import project_root
    from passerelle.emulate import find_micropython
    from passerelle.brokers import Mosquitto, launch

    log = log or (lambda m: print(m, file=sys.stderr, flush=True))
    root = project_root()
    mp = micropython or find_micropython()
    res = empty_result()
    notes, details = res["notes"], res["details"]
    t_start = time.monotonic()
    res["meta"] = {"quick": quick, "parts": list(parts or PARTS), "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                   "cpus": os.cpu_count(), "python": sys.version.split()[0],
                   "micropython": str(mp),
                   "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
                   "note": "timings on a machine whose CPU may be shared with other work: "
                           "see load_avg; unix-port TIC time is the best of 9 passes"}

    def tic_unix():
        from passerelle.bench import tic
        u = tic.run_unix_port(mp, root)
        for k in KINDS:
            res["tic"]["unix_us_per_frame"][k] = u["unix_us_per_frame"][k]
            res["tic"]["unix_alloc_bytes_per_frame"][k] = u["unix_alloc_bytes_per_frame"][k]
        details["tic_unix"] = {"median_us": u["unix_us_per_frame_median"],
                               "worst_case": u["unix_worst_case"],
                               "frame_bytes": {k: u["details"][k]["bytes_per_frame"] for k in KINDS},
                               "method": "passerelle.bench.tic (tic_sample.py frames: historic "
                                         "1-phase Tempo, standard 3-phase Tempo), best of 9 passes "
                                         "over 60 frames; allocation with the GC disabled"}

    def tic_cpython():
        from passerelle.bench import tic_peers
        r = tic_peers.run(seconds=0.2 if quick else 1.0)
        for p in TIC_PEERS:
            res["tic"]["cpython_frames_per_s"][p] = r["cpython_frames_per_s"][p]
        details["tic_cpython"] = {"ratio_vs_fastest_peer": r["ratio_vs_fastest_peer"],
                                  "versions": r["versions"], "frame_bytes": r["frame_bytes"],
                                  "method": "passerelle.bench.tic_peers (simulator frames)"}
        for k, v in r["notes"].items():
            notes["tic." + k] = v

    def mqtt_ours():
        from passerelle.bench import mqtt
        n = (2000, 500, 200) if quick else (20000, 4000, 1000)
        r = mqtt.run(micropython=mp, n_qos0=n[0], n_qos1=n[1], n_latency=n[2])
        res["mqtt"]["passerelle"] = {k: r[k] for k in MQTT_KEYS}
        details["mqtt_passerelle"] = r

    def mqtt_peers():
        from passerelle.bench import mqtt_peers
        r, n = mqtt_peers.run_all(mp, quick=quick)
        for c in ("chumicro_mqtt", "aiomqttc", "paho"):
            res["mqtt"][c] = r[c]
        for k, v in n.items():
            notes["mqtt." + k] = v
        details["mqtt_method"] = ("loopback mosquitto, 58-byte payload; qos0/qos1 = msgs/s until "
                                  "written/acknowledged; latency = QoS0 publish -> the same "
                                  "client's subscription delivers it, one at a time; unix port "
                                  "for passerelle/chumicro_mqtt/aiomqttc, CPython for paho; pins: "
                                  "%s" % json.dumps(mqtt_peers.MPY_PINS))

    def gateway_parts():
        if parts is not None and not any(p in parts for p in PARTS[4:]):
            for p in PARTS[4:]:
                _step(res, p, None, log, parts)
            return
        from passerelle.bench import gateway
        cfg, scen_notes = gateway.scenario_config()
        broker = launch(Mosquitto)
        try:
            def heap_min():
                if quick:
                    b, tried = gateway.min_heapsize(broker, lo_k=64, hi_k=192, step_k=32,
                                                    meter_s=60, speed=30, log=log)
                else:
                    b, tried = gateway.min_heapsize(broker, lo_k=48, hi_k=256, step_k=4,
                                                    meter_s=600, speed=50, log=log)
                res["heap"]["min_heapsize_bytes"] = b
                details["heap_bisection"] = {"%dK" % k: (v or "pass") for k, v in sorted(tried.items())}
                notes["heap.scenario"] = "; ".join(
                    ["standard 3-phase TIC, discovery on, %s of line time at x%d, min_interval_s 0"
                     % ("60 s" if quick else "10 min", 30 if quick else 50)] + scen_notes
                    + (["quick: 32K steps"] if quick else ["4K steps"]))
                if b is None:
                    notes["heap.min_heapsize_bytes"] = "no heap up to 256K passed: %s" % tried

            def growth():
                last = 1000 if quick else 10000
                g = gateway.heap_growth(broker, first=100, last=last, speed=100,
                                        slow=not quick, log=log)
                res["heap"]["growth_bytes"] = g["growth_bytes"]
                details["heap_growth"] = g
                notes["heap.growth_bytes"] = (
                    "free heap (gateway stats: gc.collect(), gc.mem_free()) at frame %s minus at "
                    "frame %s, -X heapsize=%s, TIC at x%s, min_interval_s %s%s%s" % (
                        g.get("frame_first"), g.get("frame_last"), g["heapsize"], g["speed"],
                        g["min_interval_s"], "; quick: to frame 1,000 only" if quick else "",
                        "" if g["ok"] else "; the run failed: %s" % g["reason"]))

            def e2e():
                e = gateway.e2e(broker, samples=15 if quick else 100, speed=8 if quick else 4,
                                log=log)
                for k in E2E_KEYS:
                    res["e2e"][k] = e[k]
                details["e2e"] = e
                notes["e2e.frame_to_state"] = (
                    "ETX written by the TIC server (x%g line rate) -> the state with that "
                    "frame's DATE on a paho subscriber, same host clock" % e["speed"])
                if not e["relays"]:
                    notes["e2e.command_to_echo"] = ("null: the gateway does not handle "
                                                    "<base>/<id>/<relay>/set yet")
                else:
                    notes["e2e.command_to_echo"] = (
                        "paho publishes ON/OFF (QoS 1) on <base>/<id>/r1/set -> the retained "
                        "r1/state echo arrives on the same client (%d commands, %d without "
                        "echo within 2 s); command -> pin level reported to the emulator's I/O "
                        "server: p50 %s ms, p99 %s ms (%d samples, details.e2e)"
                        % (e["command_samples"], e["command_missed"], e["command_to_pin_p50_ms"],
                           e["command_to_pin_p99_ms"], e["command_to_pin_samples"]))

            _step(res, "heap.min_heapsize", heap_min, log, parts)
            _step(res, "heap.growth", growth, log, parts)
            _step(res, "e2e", e2e, log, parts)
        finally:
            broker.__exit__(None, None, None)

    _step(res, "tic.unix", tic_unix, log, parts)
    _step(res, "tic.cpython", tic_cpython, log, parts)
    _step(res, "mqtt.passerelle", mqtt_ours, log, parts)
    _step(res, "mqtt.peers", mqtt_peers, log, parts)
    gateway_parts()
    res["targets"] = targets(res)
    res["board_estimate"] = board_estimate(res)
    res["meta"]["total_seconds"] = round(time.monotonic() - t_start, 1)
    res["meta"]["load_avg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return res


def targets(res):
    """Issue 8 §2: [{"target", "value", "limit", "pass"}] (pass None when not measured)."""
    t = res["tic"]
    rows = []

    def add(name, value, limit, ok):
        rows.append({"target": name, "value": value, "limit": limit,
                     "pass": None if value is None else bool(ok)})

    for k, lim in (("historic", 60.0), ("standard", 250.0)):
        v = t["unix_us_per_frame"][k]
        add("decode %s us/frame (unix)" % k, v, "<= %g" % lim, v is not None and v <= lim)
    for k, lim in (("historic", 2500), ("standard", 10000)):
        v = t["unix_alloc_bytes_per_frame"][k]
        add("allocated %s bytes/frame (unix)" % k, v, "<= %d" % lim, v is not None and v <= lim)
    for k in KINDS:
        ours = t["cpython_frames_per_s"]["passerelle"][k]
        others = [t["cpython_frames_per_s"][p][k] for p in TIC_PEERS[1:]
                  if t["cpython_frames_per_s"][p][k]]
        ratio = round(ours / max(others), 2) if ours and others else None
        add("CPython %s frames/s vs fastest PyPI parser" % k, ratio, ">= 3x",
            ratio is not None and ratio >= 3)
    det = res["details"].get("mqtt_passerelle") or {}
    v = det.get("qos1_publish_p50_ms")
    add("our QoS1 publish -> PUBACK p50 ms (unix)", v, "<= 1", v is not None and v <= 1.0)
    v = res["heap"]["min_heapsize_bytes"]
    add("full scenario min -X heapsize bytes", v, "<= %d (96K)" % HEAP_TARGET,
        v is not None and v <= HEAP_TARGET)
    v = res["heap"]["growth_bytes"]
    g = res["details"].get("heap_growth") or {}
    add("heap growth bytes, frame %s -> %s" % (g.get("frame_first", 100), g.get("frame_last", 10000)), v, "<= %d" % GROWTH_TOLERANCE,
        v is not None and v <= GROWTH_TOLERANCE)
    return rows


def board_estimate(res):
    """Unix-port timings x150 (ESP32 240 MHz) as a share of the TIC line time of a frame."""
    out = {"factor": BOARD_FACTOR}
    fb = (res["details"].get("tic_unix") or {}).get("frame_bytes") or {}
    for k in KINDS:
        us = res["tic"]["unix_us_per_frame"][k]
        nbytes = fb.get(k)
        if us is None or not nbytes:
            out[k] = None
            continue
        line_ms = nbytes * 10 * 1000.0 / BAUD[k]
        esp_ms = us * BOARD_FACTOR / 1000.0
        out[k] = {"frame_bytes": nbytes, "line_time_ms": round(line_ms, 1),
                  "unix_us": us, "esp32_ms": round(esp_ms, 2),
                  "share_of_line_time_pct": round(100.0 * esp_ms / line_ms, 2)}
    p50 = res["e2e"]["frame_to_state_p50_ms"]
    nbytes = fb.get("standard")
    if p50 is not None and nbytes:
        line_ms = nbytes * 10 * 1000.0 / BAUD["standard"]
        out["frame_to_state_standard"] = {
            "unix_ms": p50, "esp32_ms": round(p50 * BOARD_FACTOR, 1),
            "share_of_line_time_pct": round(100.0 * p50 * BOARD_FACTOR / line_ms, 1),
            "note": "the whole unix-port path (decode, state JSON, MQTT, loopback) x150: an "
                    "upper bound, the broker and subscriber are not on the board"}
    return out


# ---------------------------------------------------------------- outputs

def _fmt(v):
    if v is None:
        return "null"
    if isinstance(v, float):
        return "%.3g" % v if abs(v) < 100 else "%.0f" % v
    return str(v)


def markdown(res):
    t = res["tic"]
    m = res["meta"]
    L = ["# Passerelle benchmarks", "",
         "%s, %s run, %s s; %s CPUs, load average %s at start, %s at end (the machine may be "
         "shared: timings are indicative)." % (m.get("date_utc"), "quick" if m.get("quick") else "full",
                                                m.get("total_seconds"), m.get("cpus"),
                                                m.get("load_avg_at_start"), m.get("load_avg_at_end")),
         "", "## Targets (issue 8 §2)", "", "| target | value | limit | result |", "|---|---|---|---|"]
    for r in res["targets"]:
        L.append("| %s | %s | %s | %s |" % (r["target"], _fmt(r["value"]), r["limit"],
                                             {True: "PASS", False: "FAIL", None: "not measured"}[r["pass"]]))
    L += ["", "## TIC decoding", "", "| | historic | standard |", "|---|---|---|"]
    L.append("| unix port us/frame | %s | %s |" % tuple(_fmt(t["unix_us_per_frame"][k]) for k in KINDS))
    L.append("| unix port bytes allocated/frame | %s | %s |"
             % tuple(_fmt(t["unix_alloc_bytes_per_frame"][k]) for k in KINDS))
    for p in TIC_PEERS:
        L.append("| CPython frames/s: %s | %s | %s |" % ((p,) + tuple(_fmt(t["cpython_frames_per_s"][p][k])
                                                          for k in KINDS)))
    ratios = (res["details"].get("tic_cpython") or {}).get("ratio_vs_fastest_peer") or {}
    L.append("| ratio passerelle / fastest peer | %s | %s |" % tuple(_fmt(ratios.get(k)) for k in KINDS))
    L += ["", "## MQTT (loopback mosquitto, 58-byte payload)", "",
          "| client | QoS0 msg/s | QoS1 msg/s | latency p50 ms | latency p99 ms |", "|---|---|---|---|---|"]
    for c in MQTT_CLIENTS:
        L.append("| %s | %s |" % (c, " | ".join(_fmt(res["mqtt"][c][k]) for k in MQTT_KEYS)))
    L += ["", "## Heap and end to end", "", "| figure | value |", "|---|---|"]
    for k, v in res["heap"].items():
        L.append("| heap.%s | %s |" % (k, _fmt(v)))
    for k, v in res["e2e"].items():
        L.append("| e2e.%s | %s |" % (k, _fmt(v)))
    L += ["", "## Board estimate (unix timing x%d = ESP32 at 240 MHz)" % BOARD_FACTOR, "",
          "| | frame bytes | line time ms | unix | ESP32 ms | share of line time |", "|---|---|---|---|---|---|"]
    be = res["board_estimate"]
    for k in KINDS:
        b = be.get(k)
        if b:
            L.append("| decode %s | %d | %s | %s us | %s | %s %% |" % (k, b["frame_bytes"], b["line_time_ms"],
                                                                      b["unix_us"], b["esp32_ms"],
                                                                      b["share_of_line_time_pct"]))
    b = be.get("frame_to_state_standard")
    if b:
        L.append("| frame -> state (standard) | | | %s ms | %s | %s %% |" % (b["unix_ms"], b["esp32_ms"],
                                                                          b["share_of_line_time_pct"]))
    L += ["", "## Notes", ""]
    for k, v in sorted(res["notes"].items()):
        L.append("- **%s**: %s" % (k, v))
    return "\n".join(L) + "\n"


def chart(res, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 5), layout="constrained")
    ax = axes[0]
    t = res["tic"]["cpython_frames_per_s"]
    w = 0.2
    for i, p in enumerate(TIC_PEERS):
        vals = [t[p][k] or 0 for k in KINDS]
        bars = ax.bar([x + (i - 1.5) * w for x in range(len(KINDS))], vals, w, label=p)
        for b, k in zip(bars, KINDS):
            if t[p][k] is None:
                ax.text(b.get_x() + w / 2, 0.02, "n/a", ha="center", va="bottom", fontsize=7,
                        rotation=90, transform=ax.get_xaxis_transform())
    ax.set_xticks(range(len(KINDS)))
    ax.set_xticklabels(KINDS)
    if any(t[p][k] for p in TIC_PEERS for k in KINDS):
        ax.set_yscale("log")
    ax.set_title("TIC decoding on CPython (frames/s)")
    ax.legend(fontsize=7)
    for j, (keys, title) in enumerate(((("qos0_msgs_per_s", "qos1_msgs_per_s"), "MQTT publish (msg/s)"),
                                       (("latency_p50_ms", "latency_p99_ms"), "publish -> subscriber (ms)"))):
        ax = axes[j + 1]
        for i, k in enumerate(keys):
            vals = [res["mqtt"][c][k] or 0 for c in MQTT_CLIENTS]
            ax.bar([x + (i - 0.5) * 0.35 for x in range(len(MQTT_CLIENTS))], vals, 0.35, label=k)
        ax.set_xticks(range(len(MQTT_CLIENTS)))
        ax.set_xticklabels(MQTT_CLIENTS, fontsize=8)
        if any(res["mqtt"][c][k] for c in MQTT_CLIENTS for k in keys):
            ax.set_yscale("log")
        ax.set_title(title)
        ax.legend(fontsize=7)
    fig.suptitle("Passerelle bench %s (%s)" % (res["meta"].get("date_utc", ""),
                                               "quick" if res["meta"].get("quick") else "full"))
    fig.savefig(str(path), dpi=90)
    plt.close(fig)


def write_outputs(res, json_path):
    """OUT.json, OUT.md, OUT.png; returns the three paths."""
    json_path = Path(json_path)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    md, png = json_path.with_suffix(".md"), json_path.with_suffix(".png")
    try:
        chart(res, png)
    except Exception as e:   # noqa: BLE001 - no chart (matplotlib missing) must not lose the figures
        res["notes"]["chart"] = "no PNG: %s (pip install -e '.[bench]')" % e
        png = None
    json_path.write_text(json.dumps(res, indent=1, sort_keys=False) + "\n")
    md.write_text(markdown(res))
    return json_path, md, png


def add_parser(subparsers):
    p = subparsers.add_parser("bench", help="benchmarks: TIC decoding, MQTT, heap, end to end (JSON + table + chart)",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smaller samples, under 60 s")
    p.add_argument("--json", required=True, metavar="OUT.json",
                   help="output; OUT.md and OUT.png are written next to it")
    p.add_argument("--micropython", default=None, help="unix-port binary (default: the venv's)")
    p.add_argument("--only", default=None, metavar="PART,...",
                   help="measure only these parts (the others stay null): " + ", ".join(PARTS))
    p.set_defaults(func=_cmd)


def _cmd(args):
    parts = None
    if args.only:
        parts = [x.strip() for x in args.only.split(",") if x.strip()]
        bad = [x for x in parts if x not in PARTS]
        if bad:
            print("bench: unknown part(s) %s; parts: %s" % (", ".join(bad), ", ".join(PARTS)),
                  file=sys.stderr)
            return 2
    res = run(quick=args.quick, micropython=args.micropython, parts=parts)
    paths = write_outputs(res, args.json)
    for r in res["targets"]:
        print("%-46s %10s  %-14s %s" % (r["target"], _fmt(r["value"]), r["limit"],
                                        {True: "PASS", False: "FAIL", None: "not measured"}[r["pass"]]))
    print("written: %s" % ", ".join(str(p) for p in paths if p))
    return 0
