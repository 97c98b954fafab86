"""Draws a load test's timeline as one SVG file, no libraries needed: three panels over the
same time axis (events/s: target, generated, stored; consumer lag in records; collector
resident memory in MiB)."""
from xml.sax.saxutils import escape

WIDTH, PANEL, GAP, LEFT, RIGHT, TOP = 900, 200, 50, 80, 150, 30
COLOURS = {"target": "#888888", "generated": "#1f77b4", "stored": "#2ca02c",
           "lag": "#d62728", "rss_mib": "#9467bd"}
PANELS = [("events/s", ["target", "generated", "stored"]),
          ("consumer lag (records)", ["lag"]),
          ("collector memory (MiB)", ["rss_mib"])]


def nice_max(value):
    """A round number at or above `value` for an axis' top."""
    if value <= 0:
        return 1
    step = 10 ** (len(str(int(value))) - 1)
    for m in (1, 2, 2.5, 5, 10):
        if value <= m * step:
            return m * step
    return 10 * step


def label(value):
    if value >= 1_000_000:
        return f"{value / 1_000_000:g}M"
    if value >= 1_000:
        return f"{value / 1_000:g}k"
    return f"{value:g}"


def panel(out, rows, title, keys, top, t_max):
    """One panel: axes, grid, a polyline per key, a legend."""
    plot_w = WIDTH - LEFT - RIGHT
    y_max = nice_max(max((r[k] for r in rows for k in keys), default=0))
    out.append(f'<text x="{LEFT}" y="{top - 8}" font-weight="bold">{escape(title)}</text>')
    for i in range(5):
        y = top + PANEL - PANEL * i / 4
        out.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + plot_w}" y2="{y:.1f}" stroke="#eee"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{label(y_max * i / 4)}</text>')
    out.append(f'<rect x="{LEFT}" y="{top}" width="{plot_w}" height="{PANEL}" fill="none" stroke="#999"/>')
    for n, key in enumerate(keys):
        if not rows:
            break
        points = " ".join(f"{LEFT + plot_w * r['t'] / t_max:.1f},{top + PANEL - PANEL * r[key] / y_max:.1f}"
                          for r in rows)
        dash = ' stroke-dasharray="6,4"' if key == "target" else ""
        out.append(f'<polyline points="{points}" fill="none" stroke="{COLOURS[key]}" stroke-width="1.5"{dash}/>')
        y = top + 16 + 18 * n
        out.append(f'<line x1="{WIDTH - RIGHT + 12}" y1="{y - 4}" x2="{WIDTH - RIGHT + 32}" y2="{y - 4}" '
                   f'stroke="{COLOURS[key]}" stroke-width="2"{dash}/>')
        out.append(f'<text x="{WIDTH - RIGHT + 38}" y="{y}">{escape(key.replace("_mib", ""))}</text>')


def write(path, rows):
    t_max = max((r["t"] for r in rows), default=1) or 1
    height = TOP + len(PANELS) * (PANEL + GAP) + 20
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
           f'font-family="sans-serif" font-size="12">',
           f'<rect width="{WIDTH}" height="{height}" fill="white"/>']
    for i, (title, keys) in enumerate(PANELS):
        panel(out, rows, title, keys, TOP + i * (PANEL + GAP), t_max)
    axis_y = TOP + len(PANELS) * (PANEL + GAP) - GAP + 16
    for i in range(6):
        x = LEFT + (WIDTH - LEFT - RIGHT) * i / 5
        out.append(f'<text x="{x:.1f}" y="{axis_y}" text-anchor="middle">{t_max * i / 5:.0f} s</text>')
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")
