// db-monitor's dashboard: reads the layer's JSON routes from this origin
// and draws them. No library, no inline script (the page's CSP forbids
// both). Refreshes every N seconds, never two at once, paused while the tab
// is hidden; says when the server stops answering.
'use strict';

(function () {
  const SVG = 'http://www.w3.org/2000/svg';
  const base = location.pathname.replace(/\/dashboard\/?$/, '');
  const $ = (id) => document.getElementById(id);
  let token = null;
  let timer = null;
  let busy = false;
  let lastOk = 0;
  let readsNeedToken = false;

  // ---- formatting: every number with its unit ----
  function ms(v) {
    if (v == null || !isFinite(v)) return '–';
    if (v < 1) return (v * 1000).toFixed(0) + ' µs';
    if (v < 10) return v.toFixed(2) + ' ms';
    if (v < 1000) return v.toFixed(0) + ' ms';
    return (v / 1000).toFixed(v < 10000 ? 2 : 1) + ' s';
  }
  function count(v) {
    if (v == null || !isFinite(v)) return '–';
    if (v >= 1e6) return (v / 1e6).toFixed(1) + ' M';
    if (v >= 1e4) return (v / 1e3).toFixed(1) + ' k';
    if (v < 10 && !Number.isInteger(v)) return v.toFixed(1);
    return String(Math.round(v));
  }
  function share(v) { return v == null || !isFinite(v) ? '–' : +(v * 100).toFixed(2) + ' %'; }
  function pct(v) { return v == null || !isFinite(v) ? '–' : (v * 100).toFixed(v < 0.1 ? 1 : 0) + ' %'; }
  function seconds(s) {
    if (s == null || !isFinite(s)) return '–';
    if (s < 90) return s.toFixed(0) + ' s';
    if (s < 5400) return (s / 60).toFixed(0) + ' min';
    return (s / 3600).toFixed(1) + ' h';
  }
  // Times are 24-hour everywhere, tables and charts alike.
  function clock(unixMs) { return hm(unixMs, true); }
  function hm(unixMs, withSeconds) {
    const d = new Date(unixMs);
    const two = (n) => String(n).padStart(2, '0');
    return two(d.getHours()) + ':' + two(d.getMinutes()) + (withSeconds ? ':' + two(d.getSeconds()) : '');
  }

  // ---- DOM helpers (text only: nothing from the server becomes markup) ----
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === 'class') e.className = v; else e.setAttribute(k, v);
    }
    for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(c == null ? '' : String(c)));
    return e;
  }
  function svg(tag, attrs) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    return e;
  }
  function fill(tbody, rows, columns, empty) {
    const body = tbody.tagName === 'TBODY' ? tbody : tbody.querySelector('tbody');
    body.replaceChildren();
    if (!rows.length) {
      body.append(el('tr', {}, el('td', { class: 'none', colspan: String(columns) }, empty)));
      return;
    }
    for (const cells of rows) {
      const tr = el('tr');
      for (const c of cells) tr.append(c instanceof Node && c.tagName === 'TD' ? c : el('td', {}, c));
      body.append(tr);
    }
  }
  const td = (cls, ...children) => el('td', { class: cls }, ...children);
  function card(id, value, detail, tone) {
    const c = $(id);
    const v = c.querySelector('[data-field="value"]');
    v.textContent = value;
    v.className = 'big' + (tone ? ' ' + tone : '');
    c.querySelector('[data-field="detail"]').textContent = detail;
  }

  // ---- charts: SVG with axes, gridlines, a legend and a hover value ----
  // Drawn at the plot's own size in pixels, so that text is 10 px on a
  // phone as on a desktop. Every time chart of the page shares one window
  // (opts.window, unix ms): the last hour, or from the first data when the
  // process is younger, so that a new process's data fills the width.
  const L = 52, R = 8, T = 10, B = 22;

  function niceMax(v) {
    if (!(v > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }

  // series: [{ name, values: [number|null], cls }]; xs: unix ms per index.
  // opts: format, window [t0, t1], kind 'bars' (stacked; barsStart when
  // xs are the slots' starts, not their ends), log (a logarithmic value
  // axis), max, empty.
  function chart(id, xs, series, opts) {
    const plot = $(id).querySelector('.plot');
    const W = Math.max(240, Math.round(plot.clientWidth || 600));
    const H = Math.max(120, Math.round(plot.clientHeight || 210));
    const stacked = opts.kind === 'bars';
    const [t0, t1] = opts.window || [xs[0] || 0, xs[xs.length - 1] || 1];
    const span = Math.max(t1 - t0, 1);
    // A bar is as wide as the spacing of the points (a minute, or the
    // slot the monitor was configured with).
    const step = xs.length > 1 ? Math.min(...xs.slice(1).map((t, i) => t - xs[i]).filter((d) => d > 0), 3600000) : 60000;
    // Only what falls in the window is drawn and scaled (the series
    // reaches back a whole hour; a bar, what overlaps the window).
    const from = opts.barsStart ? 0 : -step;
    const outside = (t) => (stacked ? t + from + step <= t0 || t + from > t1 : t < t0 || t - step > t1);
    series = series.map((se) => ({ ...se, values: se.values.map((v, i) => (outside(xs[i]) ? null : v)) }));
    let max = 0, minPositive = Infinity;
    xs.forEach((_, i) => {
      if (stacked) max = Math.max(max, series.reduce((s, se) => s + (se.values[i] || 0), 0));
      else for (const se of series) {
        const v = se.values[i];
        if (v != null) { max = Math.max(max, v); if (v > 0) minPositive = Math.min(minPositive, v); }
      }
    });
    if (opts.max != null) max = Math.max(max, opts.max);
    const log = opts.log && max > 0;
    // A log axis from the decade below the least value to the one above
    // the greatest: p50 stays readable under a p99 a hundred times higher.
    // Nothing at or below zero is drawn on it.
    if (log) series = series.map((se) => ({ ...se, values: se.values.map((v) => (v > 0 ? v : null)) }));
    const lo = log ? Math.pow(10, Math.floor(Math.log10(minPositive))) : 0;
    const hi = log ? Math.max(Math.pow(10, Math.ceil(Math.log10(max))), lo * 10) : niceMax(max);
    const root = svg('svg', { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img', 'aria-label': $(id).querySelector('figcaption').textContent });
    const xAt = (t) => L + ((t - t0) / span) * (W - L - R);
    const x = (i) => xAt(xs[i]);
    const y = log
      ? (v) => T + (1 - (Math.log10(v) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * (H - T - B)
      : (v) => T + (1 - v / hi) * (H - T - B);
    const ticks = log
      ? Array.from({ length: Math.round(Math.log10(hi / lo)) + 1 }, (_, k) => lo * Math.pow(10, k))
      : [0, 1, 2, 3, 4].map((k) => (hi * k) / 4);
    for (const v of ticks) {
      root.append(svg('line', { class: 'gridline', x1: L, x2: W - R, y1: y(v), y2: y(v) }));
      const label = svg('text', { x: L - 6, y: y(v) + 3, 'text-anchor': 'end' });
      label.textContent = opts.format(v);
      root.append(label);
    }
    root.append(svg('line', { class: 'axis', x1: L, x2: L, y1: T, y2: H - B }));
    root.append(svg('line', { class: 'axis', x1: L, x2: W - R, y1: H - B, y2: H - B }));
    const fine = span < 10 * 60 * 1000;
    for (let k = 0; k <= 3; k++) {
      const t = t0 + (span * k) / 3;
      const label = svg('text', { x: xAt(t), y: H - 6, 'text-anchor': k === 0 ? 'start' : k === 3 ? 'end' : 'middle' });
      label.textContent = hm(t, fine);
      root.append(label);
    }
    let points = 0;
    if (stacked) {
      // A bar covers its slot: the one that ends at its time (the series'
      // points), or the one that starts there (opts.barsStart: the load's
      // minutes); the part in the window is drawn.
      xs.forEach((_, i) => {
        let acc = 0;
        for (const se of series) {
          const v = se.values[i] || 0;
          if (v > 0) {
            const left = Math.max(L, xAt(xs[i] + from)), right = Math.min(W - R, xAt(xs[i] + from + step) - 1);
            root.append(svg('rect', { class: se.cls, x: left, y: y(acc + v), width: Math.max(1, right - left), height: y(acc) - y(acc + v) }));
            acc += v;
            points++;
          }
        }
      });
    } else {
      for (const se of series) {
        let d = '';
        se.values.forEach((v, i) => {
          if (v == null) return;
          d += (d && se.values[i - 1] != null ? 'L' : 'M') + x(i).toFixed(1) + ' ' + y(v).toFixed(1);
          points++;
          // A point with no neighbour draws no line: mark it.
          if (se.values[i - 1] == null && se.values[i + 1] == null) {
            root.append(svg('circle', { class: 'dot ' + se.cls, cx: x(i), cy: y(v), r: 3 }));
          }
        });
        if (d) root.append(svg('path', { class: 'series ' + se.cls, d }));
      }
    }
    if (!points) {
      const t = svg('text', { class: 'empty', x: (L + W) / 2, y: H / 2, 'text-anchor': 'middle' });
      t.textContent = opts.empty || 'nothing yet';
      root.append(t);
    }
    const cursor = svg('line', { class: 'cursor', y1: T, y2: H - B, x1: L, x2: L, visibility: 'hidden' });
    root.append(cursor);
    const hit = svg('rect', { x: L, y: T, width: W - L - R, height: H - T - B, fill: 'transparent' });
    root.append(hit);
    const tip = el('div', { class: 'tip' });
    tip.hidden = true;
    hit.addEventListener('mousemove', (ev) => {
      const box = root.getBoundingClientRect();
      if (!xs.length) return;
      const t = t0 + ((((ev.clientX - box.left) / box.width) * W - L) / (W - L - R)) * span;
      let i = 0;
      xs.forEach((xt, k) => { if (Math.abs(xt - t) < Math.abs(xs[i] - t)) i = k; });
      cursor.setAttribute('x1', x(i));
      cursor.setAttribute('x2', x(i));
      cursor.setAttribute('visibility', 'visible');
      tip.replaceChildren(el('div', {}, hm(xs[i], true)), ...series.map((se) => el('div', {}, el('i', { class: se.cls }), se.name + ': ' + opts.format(se.values[i]))));
      tip.hidden = false;
      const px = (x(i) / W) * box.width;
      tip.style.left = Math.min(px + 10, box.width - 150) + 'px';
      tip.style.top = '4px';
    });
    hit.addEventListener('mouseleave', () => { tip.hidden = true; cursor.setAttribute('visibility', 'hidden'); });
    const legend = el('div', { class: 'legend' }, ...series.map((se) => el('span', {}, el('i', { class: se.cls }), se.name)));
    plot.replaceChildren(root, tip);
    const old = $(id).querySelector('.legend');
    if (old) old.replaceWith(legend); else $(id).append(legend);
    plot.dataset.points = String(points);
  }

  // The window the time charts share: the last hour, or from the earliest
  // of `starts` (unix ms, nulls skipped) when that is later, with a little
  // room before it; at least the last 10 seconds.
  let chartWindow = [Date.now() - 3600000, Date.now()];
  function windowOf(starts) {
    const now = Date.now();
    const known = starts.filter((t) => t != null);
    const first = Math.min(known.length ? Math.min(...known) : now, now - 10000);
    return [Math.max(now - 3600000, first - (now - first) * 0.03), now];
  }

  // ---- reading the routes ----
  async function get(path) {
    const headers = { Accept: 'application/json' };
    if (token) headers.Authorization = 'Bearer ' + token;
    const ctl = new AbortController();
    const t = setTimeout(() => ctl.abort(), 8000);
    try {
      const r = await fetch(base + path, { headers, cache: 'no-store', signal: ctl.signal, credentials: 'same-origin' });
      if (r.status === 401) { readsNeedToken = true; throw new Error('this dashboard needs the admin token to read'); }
      if (r.status === 429) throw new Error('the monitor is busy (429)');
      const body = await r.json();
      if (!r.ok && path !== '') throw new Error(body.message || r.statusText);
      return body;
    } finally {
      clearTimeout(t);
    }
  }

  // The load chart's route, kept across refreshes.
  let loadRoute = '';
  const WAITS = ['CPU', 'Lock', 'LWLock', 'IO', 'IPC', 'Client', 'Timeout', 'BufferPin', 'Activity', 'Extension', 'other'];

  function renderServer(load, connections, slow) {
    const poller = connections && connections.poller;
    $('poller-text').textContent = !poller ? 'no sample yet'
      : !poller.election ? 'every instance reads the server (no election)'
        : poller.leader ? `this instance's poller (pid ${poller.pid}) reads the server for the fleet`
          : `the poller of pid ${poller.leader_pid ?? '?'} reads the server for the fleet; this instance reads its own backends`;
    // The route picker: every route seen in the window, the choice kept.
    const picker = $('load-route');
    const routes = load ? load.by_route.map((r) => r.name) : [];
    const known = [...picker.options].map((o) => o.value);
    if (routes.some((r) => !known.includes(r)) || known.length !== routes.length + 1) {
      picker.replaceChildren(el('option', { value: '' }, 'every route'), ...routes.map((r) => el('option', { value: r }, r)));
    }
    picker.value = routes.includes(loadRoute) ? loadRoute : '';
    // Every minute of the charts' window, empty ones included.
    const byStart = new Map((load ? load.minutes : []).map((m) => [m.start_unix_ms, m]));
    const now = Math.floor(Date.now() / 60000) * 60000;
    const first = Math.floor(chartWindow[0] / 60000) * 60000;
    const starts = Array.from({ length: Math.max(1, (now - first) / 60000 + 1) }, (_, i) => first + i * 60000);
    const minutes = starts.map((t) => byStart.get(t) || { start_unix_ms: t, slices: [] });
    const waits = WAITS.filter((w) => minutes.some((m) => m.slices.some((s) => s.wait_event_type === w)));
    const sessions = (v) => v == null ? '–' : v.toFixed(v < 10 ? 2 : 0);
    chart('chart-load', starts, waits.map((w, i) => ({
      name: w, cls: 'c' + ((i % 6) + 1),
      values: minutes.map((m) => m.slices.filter((s) => s.wait_event_type === w && (!picker.value || s.route === picker.value))
        .reduce((sum, s) => sum + s.average_active_sessions, 0)),
    })), { kind: 'bars', barsStart: true, format: sessions, window: chartWindow, empty: load && load.enabled ? 'no active session sampled yet' : 'the load sampler is off' });
    const mostly = (route) => {
      const top = (load ? load.total : []).filter((s) => s.route === route)[0];
      return top ? `${top.wait_event_type} ${top.wait_event === top.wait_event_type ? '' : top.wait_event}` : '–';
    };
    fill($('load-routes'), (load ? load.by_route : []).slice(0, 8).map((r) => [r.name, td('num', sessions(r.average_active_sessions)), mostly(r.name)]),
      3, 'no active session sampled yet');
    const b = connections && connections.budget;
    $('budget-text').textContent = !b ? (poller && !poller.leader ? 'read by the elected poller' : 'no budget read yet')
      : `${b.used} of ${b.available} connections open (max_connections ${b.max_connections}, ${b.reserved} reserved) · ${b.free} free · the monitored pools can open ${b.committed} (${b.instances.map((i) => `${i.application_name} at ${i.client_addr}: ${i.pool_max}${i.this_instance ? ', this one' : ''}`).join('; ')})`;
    $('budget-text').className = b && (b.committed > b.available || b.free < b.min_free) ? 'bad' : 'muted';
    fill($('budget'), b ? b.by_application.map((a) => [a.application_name, a.client_addr, td('num', count(a.count))]) : [], 3, 'no budget read');
    const planned = slow ? slow.groups.filter((g) => g.plan) : [];
    $('plans-text').textContent = slow && slow.plans_unavailable ? slow.plans_unavailable : '';
    $('plans').hidden = !!(slow && slow.plans_unavailable);
    fill($('plans'), planned.map((g) => [td('sql', g.statement),
      g.plan.failed ? td('bad', g.plan.failed) : td('sql plan', g.plan.nodes.slice(0, 6).map((n) => '  '.repeat(n.depth) + n.node_type + (n.relation ? ' on ' + n.relation : '')).join('\n')),
      g.plan.large_seq_scans.length ? td('warn', g.plan.large_seq_scans.map((s) => `${s.relation} (${count(s.table_rows)} rows)`).join(', ')) : '–',
      td('num', `${count(g.plan.estimated_rows)} / ${count(g.client_rows_per_call)}`)]), 4, 'no plan read yet');
  }

  function render(health, all, series, activity, locks, replicas, running) {
    $('replicas').hidden = !replicas;
    if (replicas) {
      $('replicas-text').textContent = `primary ${replicas.primary} · ${count(replicas.primary_reads)} reads sent to the primary with no replica healthy`;
      fill($('replicas-table'), replicas.replicas.map((r) => [r.pool, td(r.healthy ? 'ok' : 'bad', r.healthy ? 'healthy' : 'skipped'),
        td('num', ms(r.load_ms)), td('num', count(r.in_flight)), td('num', count(r.reads)), r.last_failure || '–']), 6, 'no replica');
    }
    $('pool').textContent = health.pool ? '· ' + health.pool : '';
    const up = health.status === 'healthy';
    card('card-health', up ? 'healthy' : 'unhealthy',
      up ? 'database answered in ' + ms(health.ping_ms) + ' · checkout ' + ms(health.checkout_ms) : (health.error || 'no answer'), up ? 'ok' : 'bad');
    const perf = all.performance;
    const parts = perf.parts;
    // What each part took off the 100 ("alerts 0 %" read as "no alerts").
    const lost = ['latency', 'errors', 'pool', 'alerts'].map((k) => [k, (1 - parts[k].score) * parts[k].weight * 100])
      .filter(([, v]) => v >= 0.5);
    card('card-score', perf.score.toFixed(0) + ' / 100',
      lost.length ? 'points lost to ' + lost.map(([k, v]) => `${k} ${v.toFixed(0)}`).join(' · ') : 'no points lost',
      perf.score >= 80 ? 'ok' : perf.score >= 50 ? 'warn' : 'bad');
    const bySev = all.alerts.active_by_severity || {};
    const n = all.alerts.active.length;
    card('card-alerts', String(n),
      n ? ['critical', 'high', 'medium', 'low'].filter((s) => bySev[s]).map((s) => bySev[s] + ' ' + s).join(' · ') : 'none active',
      n ? (bySev.critical || bySev.high ? 'bad' : 'warn') : 'ok');
    // Waiting as the load counts it (checkouts queued beyond the free
    // room), not bb8's pending, which counts a checkout in its validity
    // ping beside an idle connection.
    const ready = all.readiness, load = ready.load;
    card('card-pool', `${health.in_use} / ${health.max_size} in use`,
      `${count(load.waiting)} waiting · ${count(health.idle)} idle · ${count(health.connections)} open`,
      load.waiting > 0 ? 'bad' : health.in_use / Math.max(health.max_size, 1) >= 0.9 ? 'warn' : 'ok');

    card('card-ready', ready.status === 'ready' ? 'ready' : 'not ready',
      (ready.reasons.length ? ready.reasons.map((r) => r.reason.replace(/_/g, ' ')).join(' · ') + ' · ' : '') +
      `${count(load.waiting)} waiting · wait p95 ${ms(load.wait_p95_ms)} · ${load.served_per_second.toFixed(1)}/s · ${count(load.requests_shed)} shed`,
      ready.status === 'ready' ? (load.waiting > 0 ? 'warn' : 'ok') : 'bad');
    const objectives = perf.objectives || [];
    $('objectives').hidden = !objectives.length;
    const burn = (v) => td(v == null ? 'num muted' : v >= 14.4 ? 'num bad' : v >= 6 ? 'num warn' : 'num', v == null ? '–' : v.toFixed(1) + '×');
    fill($('objectives-table'), objectives.map((o) => [o.route,
      (o.objective === 'latency' ? `${share(o.target)} under ${ms(o.bound_ms)}` : `${share(o.target)} without a failure`),
      td('num', share(o.compliance)), td(o.budget_remaining != null && o.budget_remaining < 0 ? 'num bad' : 'num', share(o.budget_remaining)),
      burn(o.burn_rates.five_minutes), burn(o.burn_rates.one_hour), burn(o.burn_rates.six_hours), td('num', count(o.requests))]),
    8, 'no objective declared');

    const xs = series.points.map((p) => p.end_unix_ms);
    const samples = all.pool_trend.samples.slice();
    // The series fills its window with empty slots, before this process
    // started too: the window starts at the first slot with statements.
    const active = series.points.find((p) => p.statements > 0);
    chartWindow = windowOf([active ? active.end_unix_ms - 1000 * active.covered_seconds : null,
      samples.length ? samples[0].at_unix_ms : null]);
    const window = chartWindow;
    // Counts as a rate per minute: the last point is the current minute so
    // far, and its count alone would read as a drop.
    const perMinute = (p, n) => (p.partial && p.statements_per_minute == null ? null : (n * 60) / p.covered_seconds);
    chart('chart-latency', xs, [
      { name: 'p50', cls: 'c1', values: series.points.map((p) => p.p50_ms) },
      { name: 'p95', cls: 'c2', values: series.points.map((p) => p.p95_ms) },
      { name: 'p99', cls: 'c3', values: series.points.map((p) => p.p99_ms) },
    ], { format: ms, log: true, window, empty: 'no statements in the last hour' });
    chart('chart-statements', xs, [
      { name: 'statements', cls: 'c1', values: series.points.map((p) => perMinute(p, p.statements)) },
      { name: 'failed', cls: 'c3', values: series.points.map((p) => perMinute(p, p.errors)) },
    ], { format: count, window, empty: 'no statements in the last hour' });
    const kinds = [...new Set(series.points.flatMap((p) => Object.keys(p.errors_by_kind)))].sort();
    chart('chart-errors', xs, kinds.map((k, i) => ({ name: k, cls: 'c' + ((i % 6) + 1), values: series.points.map((p) => perMinute(p, p.errors_by_kind[k] || 0)) })),
      { kind: 'bars', format: count, window, empty: 'no errors in the last hour' });
    // The trend's samples (a minute each) and the pool as
    // the health check saw it just now, so that the chart has data from
    // the start.
    const nowUse = health.in_use / Math.max(health.max_size, 1);
    samples.push({ at_unix_ms: Date.now(), utilization: nowUse, peak_utilization: null });
    chart('chart-pool', samples.map((s) => s.at_unix_ms), [
      { name: 'in use', cls: 'c1', values: samples.map((s) => s.utilization) },
      { name: 'peak', cls: 'c2', values: samples.map((s) => s.peak_utilization) },
    ], { format: pct, max: 1, window, empty: 'no pool sample yet' });

    const f = perf.forecast;
    $('forecast-text').textContent = !f ? 'no forecast sample yet'
      : f.state === 'forecast' ? `the pool runs out in ${seconds(f.exhausted_in_seconds)}: demand ${f.evidence.demand.toFixed(1)} of ${f.evidence.max_size}, rising ${f.evidence.slope_per_minute.toFixed(2)} connections/min over ${seconds(f.evidence.window_seconds)}`
        : f.state === 'exhausted' ? `the pool is at its maximum now (${f.evidence.max_size})`
          : f.state === 'gathering' ? `gathering evidence: ${seconds(f.evidence.window_seconds)} of ${seconds(f.evidence.required_seconds)}`
            : `no exhaustion forecast (${f.state}; demand ${f.evidence.demand.toFixed(1)} of ${f.evidence.max_size})`;
    fill($('anomalies'), all.queries.anomalies.map((a) => [
      td('sql', a.statement), a.kind,
      td('num', a.kind === 'latency' ? ms(a.current) : pct(a.current)),
      td('num', a.kind === 'latency' ? ms(a.baseline) : pct(a.baseline)),
      td('num', a.z.toFixed(1) + (a.robust_z != null ? ' / ' + a.robust_z.toFixed(1) : '')),
      td('num', `${a.minutes} of ${a.of_minutes}`),
    ]), 6, 'no statement is off its own baseline now');

    const total = all.queries.overall.total_ms || 0;
    const degraded = new Set(all.queries.degraded.map((d) => d.fingerprint));
    const slower = new Set(all.slow_queries.groups.filter((g) => g.getting_slower).map((g) => g.fingerprint));
    fill($('statements'), all.queries.by_statement.map((s) => {
      const share = total > 0 ? s.total_ms / total : 0;
      const trend = s.anomalies.length ? 'anomalous' : degraded.has(s.fingerprint) ? 'degraded' : slower.has(s.fingerprint) ? 'getting slower' : 'steady';
      const bar = el('span', { class: 'bar' });
      bar.style.width = Math.round(share * 60) + 'px';
      const split = s.split || {};
      return [td('sql', s.statement), td('num', count(s.count)), td('num', ms(s.mean_ms)), td('num', ms(s.p95_ms)),
        td('num', ms(split.checkout_wait_ms)), td('num', ms(split.queued_ms)),
        td('num', bar, pct(share)), td(trend === 'steady' ? 'muted' : 'warn', trend)];
    }), 8, 'no statements in the last hour');

    fill($('alerts'), all.alerts.active.map((a) => {
      const button = el('button', { type: 'button' }, 'resolve');
      button.addEventListener('click', () => resolve(a.id, button));
      // The button first: on a phone the message wraps and nothing
      // scrolls it out of reach.
      return [td('', button), td('sev sev-' + a.severity, a.severity), a.alert_type, td('message', a.message),
        td('num', `${count(a.occurrences)}× · ${clock(a.last_seen_unix_ms)}`)];
    }), 5, 'no active alert');

    fill($('running'), running ? running.statements.map((r) => [td('sql', r.statement), td('num bad', ms(r.running_ms)),
      td('num', ms(r.threshold_ms)), r.route || '–', r.checkout_site || '–']) : [], 5, 'no statement is running past its threshold');

    fill($('routes'), all.routes.map((r) => [r.route, td('num', count(r.requests)),
      td('num', ms(r.database_ms_per_request)), td('num', ms(r.p95_database_ms)),
      td('num', r.statements_per_request.toFixed(1)), td('num', count(r.requests_with_errors))]), 6,
      'no request under a route yet');

    fill($('holders'), (all.holders || []).map((h) => [h.route || '(no request)', h.call_site,
      td('num', count(h.checkouts)), td('num', ms(h.held_ms_per_checkout)), td('num', ms(h.in_statements_ms_per_checkout)),
      td('num' + (h.held_idle_share >= 0.5 ? ' bad' : ''), ms(h.held_idle_ms_per_checkout)),
      td('num', `${Math.round(h.held_idle_share * 100)}%`), td('num', ms(h.held_idle_seconds * 1000))]), 8,
      'no hold recorded: MonitorConfig::hold_times (ASYNC_DB_HOLD_TIMES=true) splits each route\'s holds');

    fill($('errors'), all.errors.recent.map((e) => [td('num', clock(e.at_unix_ms)), e.error_type, e.sqlstate || '–',
      e.route || '–', td('sql', e.statement || '–'), e.message]), 6, 'no errors in the last hour');
    fill($('nplusone'), all.n_plus_one.map((p) => [p.route || '(no route)', p.checkout_site || '–',
      td('sql', p.statement || p.fingerprint), td('num', count(p.requests)), td('num', count(p.max_runs))]), 5,
      'no N+1 pattern seen');
    fill($('serial'), (all.serial_reads || []).map((p) => [p.route || '(no route)', p.checkout_site || '–',
      td('sql', p.statements.map((s) => s || '(another pool)').join(' · ')), td('num', count(p.requests)),
      td('num', ms(p.max_saving_ms))]), 5, 'no serial reads seen');
    fill($('redundant'), (all.redundant_statements || []).map((p) => [p.route || '(no route)', p.checkout_site || '–',
      td('sql', p.statement || p.fingerprint), td('num', count(p.requests)), td('num', count(p.max_runs))]), 5,
      'none seen (DbMonitorLayer::redundant_statements is off by default)');

    const server = all.server;
    $('server').hidden = !server;
    $('jump-server').hidden = !server;
    if (server) {
      $('server-text').textContent = `${server.backends} backends of this pool · ${server.active} active · ${server.idle_in_transaction} idle in transaction · ${server.waiting_on_locks} waiting on locks` +
        (server.oldest_transaction_ms != null ? ` · oldest transaction ${ms(server.oldest_transaction_ms)}` : '') +
        (server.last_failure ? ` · last failure: ${server.last_failure}` : '');
      fill($('activity'), activity ? activity.backends.map((b) => [td('num', b.pid), b.state || '–',
        b.wait_event_type ? b.wait_event_type + ' ' + (b.wait_event || '') : '–', td('num', ms(b.transaction_age_ms)),
        td('sql', b.statement || '–'), [b.route, b.checkout_site].filter(Boolean).join(' at ') || '–']) : [], 6, 'no backend sampled yet');
      const tree = $('locks');
      tree.replaceChildren();
      const node = (n) => {
        const li = el('li', {}, `pid ${n.pid} ${n.state || ''} ${n.holding ? 'holds ' + n.holding : ''}${n.waiting_for ? 'waits for ' + n.waiting_for : ''} ${n.route ? '(' + n.route + ')' : n.ours ? '(this pool)' : '(' + (n.application_name || 'other') + ')'}`);
        if (n.blocking.length) li.append(el('ul', {}, ...n.blocking.map(node)));
        return li;
      };
      if (locks && locks.roots.length) tree.append(...locks.roots.map(node));
      else tree.append(el('li', { class: 'muted' }, 'nobody waits on a lock'));
    }
  }

  async function refresh() {
    if (busy) return;
    busy = true;
    clearTimeout(timer);
    try {
      const [health, all, series, replicas, running] = await Promise.all([get(''), get('/metrics/comprehensive?minutes=60&limit=10'),
        get('/metrics/series?minutes=60'), get('/replicas'), get('/metrics/running')]);
      let activity = null, locks = null, load = null, connections = null;
      if (all.server) {
        [activity, locks, load, connections] = await Promise.all([get('/server/activity'), get('/server/locks'),
          get('/server/load?minutes=60'), get('/server/connections')]);
      }
      render(health, all, series, activity, locks, replicas, running);
      if (all.server) renderServer(load, connections, all.slow_queries);
      lastOk = Date.now();
      $('updated').textContent = 'updated ' + clock(lastOk);
      $('stale').hidden = true;
      document.querySelector('main').classList.remove('dim');
    } catch (err) {
      const since = lastOk ? 'since ' + clock(lastOk) : 'yet';
      $('stale').textContent = `The monitor did not answer (${err.message}); showing what it said ${lastOk ? 'at ' + clock(lastOk) : 'before'}. Retrying.`;
      if (!lastOk) $('stale').textContent = `The monitor did not answer (${err.message}). Retrying.`;
      $('stale').hidden = false;
      $('updated').textContent = 'no answer ' + since;
      document.querySelector('main').classList.toggle('dim', lastOk > 0);
      if (readsNeedToken && !token) askToken();
    } finally {
      busy = false;
      schedule();
    }
  }

  function schedule() {
    clearTimeout(timer);
    const every = Number($('every').value);
    if (every > 0 && !document.hidden) timer = setTimeout(refresh, every * 1000);
  }

  // ---- the admin token: asked for when needed, kept in memory only ----
  let afterToken = null;
  function askToken(then) {
    afterToken = then || null;
    $('token-input').value = '';
    $('token-dialog').showModal();
  }
  $('token-save').addEventListener('click', () => {
    token = $('token-input').value.trim() || null;
    $('token-dialog').close();
    const next = afterToken;
    afterToken = null;
    if (next) next(); else refresh();
  });
  $('token-cancel').addEventListener('click', () => { afterToken = null; $('token-dialog').close(); });
  $('token-button').addEventListener('click', () => askToken());

  async function resolve(id, button) {
    if (!token) { askToken(() => resolve(id, button)); return; }
    button.disabled = true;
    try {
      const r = await fetch(`${base}/alerts/${encodeURIComponent(id)}/resolve`, { method: 'POST', headers: { Authorization: 'Bearer ' + token }, cache: 'no-store' });
      if (r.status === 401) { token = null; askToken(() => resolve(id, button)); return; }
      if (!r.ok) { const body = await r.json().catch(() => ({})); button.textContent = body.message || 'failed'; return; }
      refresh();
    } finally {
      button.disabled = false;
    }
  }

  $('every').addEventListener('change', () => { schedule(); });
  $('load-route').addEventListener('change', () => { loadRoute = $('load-route').value; refresh(); });
  document.addEventListener('visibilitychange', () => {
    if (document.hidden) clearTimeout(timer);
    else refresh();
  });
  refresh();
})();
