"""The memory benchmark's table and plot (benches/memory.sh).

Reads lines "responses seconds peak_kb load" and prints a Markdown table;
with WRITE=1 also writes benches/memory.svg (time per response and peak
memory against size, drawn by hand: no plotting library needed) and puts
the table into BENCHMARKS.md between the memory markers.
"""

import os
import re
import sys

START, END = "<!-- memory:start -->", "<!-- memory:end -->"


def read(path):
    rows = []
    with open(path) as f:
        for line in f:
            n, seconds, kb, load = line.split()
            rows.append((int(n), float(seconds), int(kb) / 1024, load))
    return rows


def table(rows, budget):
    base = rows[0][1] / rows[0][0]
    lines = [
        f"| responses | wall s | µs per response | vs {rows[0][0]:,} | peak RSS MB | load at start |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for n, seconds, mb, load in rows:
        per = seconds / n
        lines.append(
            f"| {n:,} | {seconds:.1f} | {per * 1e6:.2f} | {per / base:.2f}x | {mb:.0f} | {load} |"
        )
    return "\n".join(lines)


def svg(rows, budget):
    width, height, left, right, top, bottom = 640, 360, 70, 70, 40, 50
    plot_w, plot_h = width - left - right, height - top - bottom
    max_n = max(n for n, *_ in rows)
    per = [s / n * 1e6 for n, s, _, _ in rows]
    max_per = max(per) * 1.25
    max_mb = max(max(mb for _, _, mb, _ in rows), 512) * 1.15

    def x(n):
        return left + plot_w * n / max_n

    def y(value, top_value):
        return top + plot_h * (1 - value / top_value)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{width / 2}" y="20" text-anchor="middle" font-size="14">'
        f"build --memory-budget {budget}: time per response and peak RSS</text>",
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="black"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#1f77b4"/>',
        f'<line x1="{left + plot_w}" y1="{top}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#d62728"/>',
        f'<text x="{left + plot_w / 2}" y="{height - 12}" text-anchor="middle">responses (millions)</text>',
        f'<text x="16" y="{top + plot_h / 2}" fill="#1f77b4" transform="rotate(-90 16 {top + plot_h / 2})" '
        f'text-anchor="middle">µs per response</text>',
        f'<text x="{width - 14}" y="{top + plot_h / 2}" fill="#d62728" '
        f'transform="rotate(90 {width - 14} {top + plot_h / 2})" text-anchor="middle">peak RSS (MB)</text>',
    ]
    for n, *_ in rows:
        out.append(f'<text x="{x(n)}" y="{top + plot_h + 16}" text-anchor="middle">{n / 1e6:g}</text>')
    for i in range(5):
        v = max_per * i / 4
        out.append(f'<text x="{left - 6}" y="{y(v, max_per) + 4}" text-anchor="end" fill="#1f77b4">{v:.1f}</text>')
        m = max_mb * i / 4
        out.append(f'<text x="{left + plot_w + 6}" y="{y(m, max_mb) + 4}" fill="#d62728">{m:.0f}</text>')
    # The 512 MB target.
    out.append(
        f'<line x1="{left}" y1="{y(512, max_mb)}" x2="{left + plot_w}" y2="{y(512, max_mb)}" '
        f'stroke="#d62728" stroke-dasharray="4 4"/>'
        f'<text x="{left + plot_w - 4}" y="{y(512, max_mb) - 4}" text-anchor="end" fill="#d62728">512 MB target</text>'
    )
    for values, top_value, colour in (
        (per, max_per, "#1f77b4"),
        ([mb for _, _, mb, _ in rows], max_mb, "#d62728"),
    ):
        points = " ".join(f"{x(n):.1f},{y(v, top_value):.1f}" for (n, *_), v in zip(rows, values))
        out.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for (n, *_), v in zip(rows, values):
            out.append(f'<circle cx="{x(n):.1f}" cy="{y(v, top_value):.1f}" r="3.5" fill="{colour}"/>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main():
    path, budget = sys.argv[1], sys.argv[2]
    rows = read(path)
    text = table(rows, budget)
    print(text)
    if os.environ.get("WRITE") != "1":
        return
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "memory.svg"), "w") as f:
        f.write(svg(rows, budget))
    page = os.path.join(here, "..", "BENCHMARKS.md")
    with open(page) as f:
        content = f.read()
    block = f"{START}\n{text}\n{END}"
    content = re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: block, content, flags=re.S)
    with open(page, "w") as f:
        f.write(content)


if __name__ == "__main__":
    main()
