"""SVG written by hand (no plotting library): throughput and p99 against concurrency, and a profile's flame graph."""
from __future__ import annotations

import math
import statistics
from html import escape

COLOURS = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860"]
PANEL_W, PANEL_H, MARGIN = 360, 240, 56


def _median(runs: list[dict], key: str) -> float | None:
    values = [run[key] for run in runs if run.get(key)]
    return statistics.median(values) if values else None


def _log_ticks(low: float, high: float) -> list[float]:
    return [10.0 ** e for e in range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1)]


def _panel(x0: int, title: str, unit: str, series: dict[str, list[tuple[int, float]]],
           concurrencies: list[int]) -> list[str]:
    values = [v for points in series.values() for _, v in points]
    if not values:
        return []
    ticks = _log_ticks(min(values), max(values))
    low, high = math.log10(ticks[0]), math.log10(ticks[-1]) or 1

    def x(i: int) -> float:
        return x0 + MARGIN + i * (PANEL_W - MARGIN - 10) / max(len(concurrencies) - 1, 1)

    def y(v: float) -> float:
        return 30 + (PANEL_H - 60) * (1 - (math.log10(v) - low) / ((high - low) or 1))

    out = [f'<text x="{x0 + PANEL_W / 2}" y="18" text-anchor="middle" font-weight="bold">{escape(title)}</text>']
    for tick in ticks:
        out.append(f'<line x1="{x0 + MARGIN}" x2="{x0 + PANEL_W - 10}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" '
                   'stroke="#ddd"/>')
        out.append(f'<text x="{x0 + MARGIN - 4}" y="{y(tick) + 4:.1f}" text-anchor="end">{tick:g}{unit}</text>')
    for i, concurrency in enumerate(concurrencies):
        out.append(f'<text x="{x(i):.1f}" y="{PANEL_H - 12}" text-anchor="middle">{concurrency}</text>')
    out.append(f'<text x="{x0 + PANEL_W / 2 + MARGIN / 2}" y="{PANEL_H + 4}" text-anchor="middle">concurrency</text>')
    for colour, (name, points) in zip(COLOURS, series.items()):
        path = " ".join(f"{x(concurrencies.index(c)):.1f},{y(v):.1f}" for c, v in points)
        out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        out += [f'<circle cx="{x(concurrencies.index(c)):.1f}" cy="{y(v):.1f}" r="3" fill="{colour}"/>'
                for c, v in points]
    return out


def concurrency_chart(sweep: dict[int, dict[str, list[dict]]], names: list[str], caption: str) -> str:
    """Two panels (requests/s and p99 in ms, log scales) of the medians over rounds, one line per route."""
    concurrencies = sorted(sweep)
    throughput = {n: [(c, v) for c in concurrencies if (v := _median(sweep[c].get(n, []), "per_second"))]
                  for n in names}
    p99 = {n: [(c, v * 1000) for c in concurrencies if (v := _median(sweep[c].get(n, []), "latency_p99"))]
           for n in names}
    width, height = 2 * PANEL_W + 20, PANEL_H + 30 + 18 * len(names) + 20
    body = _panel(0, "throughput (requests/s)", "", throughput, concurrencies)
    body += _panel(PANEL_W + 20, "latency p99 (ms)", "", p99, concurrencies)
    for i, (colour, name) in enumerate(zip(COLOURS, names)):
        ly = PANEL_H + 30 + 18 * i
        body.append(f'<rect x="{MARGIN}" y="{ly - 9}" width="14" height="10" fill="{colour}"/>')
        body.append(f'<text x="{MARGIN + 20}" y="{ly}">{escape(name)}</text>')
    body.append(f'<text x="{MARGIN}" y="{height - 6}" fill="#555">{escape(caption)}</text>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'font-family="sans-serif" font-size="11">\n<rect width="100%" height="100%" fill="white"/>\n'
            + "\n".join(body) + "\n</svg>\n")


def flame_graph(collapsed: dict[str, int], title: str, width: int = 1200, row: int = 16) -> str:
    """An icicle flame graph of py-spy's collapsed stacks (`frame;frame;frame count`): root on top."""
    tree: dict = {"children": {}, "count": 0}
    for stack, count in collapsed.items():
        node = tree
        node["count"] += count
        for frame in stack.split(";"):
            node = node["children"].setdefault(frame, {"children": {}, "count": 0})
            node["count"] += count
    total = tree["count"] or 1
    rects: list[str] = []
    depth_max = 0

    def draw(node: dict, x: float, depth: int) -> None:
        nonlocal depth_max
        for frame, child in sorted(node["children"].items()):
            w = child["count"] / total * width
            if w >= 0.5:
                depth_max = max(depth_max, depth)
                hue = 20 + hash(frame.split(" ")[0]) % 40
                label = escape(frame if w > 7 * len(frame) else frame[: int(w / 7)])
                rects.append(f'<g><title>{escape(frame)} ({child["count"]} samples, {child["count"] / total:.1%})'
                             f'</title><rect x="{x:.1f}" y="{24 + depth * row}" width="{w:.1f}" height="{row - 1}" '
                             f'fill="hsl({hue},80%,60%)"/><text x="{x + 2:.1f}" y="{24 + depth * row + 12}">{label}'
                             '</text></g>')
                draw(child, x, depth + 1)
            x += w

    draw(tree, 0.0, 0)
    height = 24 + (depth_max + 2) * row
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="monospace" '
            f'font-size="10">\n<rect width="100%" height="100%" fill="white"/>\n<text x="4" y="16" font-size="13">'
            f'{escape(title)} ({total} samples)</text>\n' + "\n".join(rects) + "\n</svg>\n")


def top_frames(collapsed: dict[str, int], count: int = 25) -> list[tuple[str, float, float]]:
    """(frame, self share, inclusive share), the heaviest by their own (self) share first."""
    total = sum(collapsed.values()) or 1
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    for stack, samples in collapsed.items():
        frames = stack.split(";")
        own[frames[-1]] = own.get(frames[-1], 0) + samples
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + samples
    heaviest = sorted(own, key=own.get, reverse=True)
    return [(f, own.get(f, 0) / total, inclusive[f] / total) for f in heaviest[:count]]
