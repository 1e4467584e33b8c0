#!/usr/bin/env python3
"""Latency percentiles, keel vs etcd, as a hand-written SVG (no plotting
library): one panel per scenario of bench-results/compare.json, bars for
p50/p90/p99/p99.9/max on a log scale.

    usage: python3 benches/latency_chart.py compare.json latency.svg
"""
import json
import math
import sys

SCENARIOS = [
    ("put_1conn_1client", None, "put, 1 conn, 1 client"),
    ("put_100conns_1000clients", None, "put, 100 conns, 1000 clients"),
    ("range_linearizable_100conns_1000clients", None, "range (l), 1000 clients"),
    ("lease_keepalive_10conns_100clients", None, "lease keep-alive, 100 clients"),
    ("watch_latency_10k_watchers", "watch", "10k watchers: put to event"),
]
PERCENTILES = ["p50", "p90", "p99", "p99.9", "max"]
COLORS = {"etcd": "#4c78a8", "keel": "#f58518"}
PANEL_W, PANEL_H, TOP, LEFT, BOTTOM = 230, 260, 60, 60, 70
FLOOR_MS = 0.01  # a 0 ms (event before its put's response) drawn at the floor


def latencies(results, key, sub):
    report = results.get(key)
    if report is None:
        return None
    if sub:
        report = report.get(sub)
    return report and report.get("latency_ms")


def log_y(value, low, high, height):
    value = max(value, low)
    return height * (1 - (math.log10(value) - math.log10(low)) / (math.log10(high) - math.log10(low)))


def escape(text):
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def main(source, target):
    results = json.load(open(source))
    panels = []
    for key, sub, title in SCENARIOS:
        series = {server: latencies(results.get(server, {}), key, sub) for server in ("etcd", "keel")}
        if all(series.values()):
            panels.append((title, series))
    values = [s[p] for _, series in panels for s in series.values() for p in PERCENTILES]
    high = 10 ** math.ceil(math.log10(max(values + [1.0])))
    low = FLOOR_MS
    width = LEFT + PANEL_W * len(panels) + 20
    height = TOP + PANEL_H + BOTTOM
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{width / 2}" y="22" text-anchor="middle" font-size="15">'
        "Latency percentiles (ms, log scale): etcd vs keel</text>",
    ]
    # Legend.
    for i, server in enumerate(("etcd", "keel")):
        x = LEFT + i * 80
        out.append(f'<rect x="{x}" y="34" width="12" height="12" fill="{COLORS[server]}"/>')
        out.append(f'<text x="{x + 16}" y="44">{server}</text>')
    # Y axis: one gridline per decade.
    decade = low
    while decade <= high * 1.0001:
        y = TOP + log_y(decade, low, high, PANEL_H)
        out.append(f'<line x1="{LEFT}" x2="{width - 20}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{decade:g}</text>')
        decade *= 10
    for index, (title, series) in enumerate(panels):
        x0 = LEFT + index * PANEL_W
        group_w = (PANEL_W - 20) / len(PERCENTILES)
        bar_w = group_w / 2 - 2
        for j, p in enumerate(PERCENTILES):
            gx = x0 + 10 + j * group_w
            for k, server in enumerate(("etcd", "keel")):
                value = series[server][p]
                y = TOP + log_y(value, low, high, PANEL_H)
                x = gx + k * (bar_w + 2)
                out.append(
                    f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{TOP + PANEL_H - y:.1f}" '
                    f'fill="{COLORS[server]}"><title>{server} {p}: {value:.3f} ms</title></rect>'
                )
            out.append(
                f'<text x="{gx + group_w / 2 - 1:.1f}" y="{TOP + PANEL_H + 14}" text-anchor="middle">{p}</text>'
            )
        out.append(
            f'<text x="{x0 + PANEL_W / 2:.1f}" y="{TOP + PANEL_H + 34}" text-anchor="middle" '
            f'font-size="12">{escape(title)}</text>'
        )
        out.append(f'<line x1="{x0 + PANEL_W}" x2="{x0 + PANEL_W}" y1="{TOP}" y2="{TOP + PANEL_H}" stroke="#bbb"/>')
    out.append(f'<line x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{TOP + PANEL_H}" stroke="black"/>')
    out.append(
        f'<text x="{LEFT}" y="{height - 12}">bars at {FLOOR_MS} ms are 0 ms or less '
        "(an event before its put's response counts as 0, as etcd's benchmark); "
        "hover a bar for its value</text>"
    )
    out.append("</svg>")
    open(target, "w").write("\n".join(out) + "\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
