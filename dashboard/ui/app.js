// tether's admin dashboard. No framework, no build step: this file is
// served as is from the binary. Everything it renders comes from the
// server and may be hostile (channel names, user ids): it is only ever set
// through textContent and attributes, never parsed as HTML.
'use strict';

(() => {
  const TOKEN_KEY = 'tether.admin.token';
  const $ = (id) => document.getElementById(id);

  // el builds an element: attrs are set as attributes (class, data-*),
  // strings and numbers among kids become text nodes.
  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v !== undefined && v !== null && v !== false) e.setAttribute(k, String(v));
    }
    for (const k of kids.flat()) {
      if (k === null || k === undefined || k === false) continue;
      e.append(typeof k === 'object' ? k : document.createTextNode(String(k)));
    }
    return e;
  }
  const svg = (tag, attrs) => {
    const e = document.createElementNS('http://www.w3.org/2000/svg', tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    return e;
  };
  const setRows = (table, rows) => table.tBodies[0].replaceChildren(...rows);

  // Formatting.
  const fmtDur = (ns) => {
    const ms = ns / 1e6;
    if (ms < 1000) return `${Math.round(ms)} ms`;
    const s = ms / 1000;
    if (s < 120) return `${s.toFixed(1)} s`;
    if (s < 7200) return `${Math.round(s / 60)} min`;
    return `${(s / 3600).toFixed(1)} h`;
  };
  const fmtBytes = (b) => (b < 1024 ? `${b} B` : b < 1 << 20 ? `${(b / 1024).toFixed(1)} KiB` : `${(b / (1 << 20)).toFixed(1)} MiB`);
  const fmtAgo = (iso, now) => (iso ? fmtDur((now - Date.parse(iso)) * 1e6) + ' ago' : '—');
  const fmtTime = (iso) => (iso ? new Date(iso).toLocaleTimeString() : '—');

  // Token and requests.
  const token = () => sessionStorage.getItem(TOKEN_KEY) || '';
  const authHeaders = (t = token()) => (t ? { Authorization: 'Bearer ' + t } : {});
  async function errorOf(res) {
    try {
      const b = await res.json();
      if (b && b.error) return `${b.error.code}: ${b.error.message}`;
    } catch {}
    return `HTTP ${res.status}`;
  }

  // Views.
  function showLogin(msg) {
    stopStream();
    $('dash').hidden = true;
    $('logout').hidden = true;
    $('login').hidden = false;
    $('login-error').textContent = msg || '';
    setStatus('idle', 'not connected');
  }
  function showDash() {
    $('login').hidden = true;
    $('dash').hidden = false;
    $('logout').hidden = !token();
  }
  function setStatus(state, text) {
    const s = $('status');
    s.dataset.state = state;
    s.textContent = text;
  }

  // The live stream: GET /v1/admin/events read with fetch (EventSource
  // cannot send the Authorization header), parsed as text/event-stream.
  let ctrl = null;
  let retryTimer = null;
  let retries = 0;
  function stopStream() {
    if (ctrl) ctrl.abort();
    ctrl = null;
    clearTimeout(retryTimer);
    retryTimer = null;
  }
  async function startStream() {
    stopStream();
    const c = new AbortController();
    ctrl = c;
    let res;
    try {
      res = await fetch('/v1/admin/events', { headers: authHeaders(), signal: c.signal, cache: 'no-store' });
    } catch {
      return retry(c);
    }
    if (res.status === 401 || res.status === 403) {
      sessionStorage.removeItem(TOKEN_KEY);
      return showLogin(await errorOf(res));
    }
    if (!res.ok || !res.body) return retry(c);
    showDash();
    setStatus('live', 'live');
    retries = 0;
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = '';
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          let event = 'message';
          let data = '';
          for (const line of block.split('\n')) {
            if (line.startsWith('event: ')) event = line.slice(7);
            else if (line.startsWith('data: ')) data += line.slice(6);
          }
          if (event === 'snapshot') render(JSON.parse(data));
          else if (event === 'shutdown') setStatus('retry', 'server stopping');
        }
      }
    } catch {}
    retry(c);
  }
  function retry(c) {
    if (ctrl !== c) return; // stopped, or replaced
    setStatus('retry', 'reconnecting');
    const delay = Math.min(10_000, 500 * 2 ** retries++) * (0.5 + Math.random() / 2);
    retryTimer = setTimeout(startStream, delay);
  }

  // Rendering.
  const TRANSPORTS = ['websocket', 'sse', 'long-poll', 'tcp'];
  const COLORS = {
    completed: '#98a2b3', closed: '#2f6fdf', reset: '#c0392b', 'half-closed': '#7f56d9', timeout: '#b26a00',
    'heartbeat-timeout': '#e07b00', 'idle-timeout': '#d4a017', 'slow-consumer': '#d6336c', kicked: '#12b76a',
    shutdown: '#475467', 'write-failed': '#8e2a1f', canceled: '#0ba5ec', 'protocol-error': '#6941c6', 'token-expired': '#15707a',
  };
  const color = (reason) => COLORS[reason] || '#' + ((hash(reason) & 0xffffff) | 0x404040).toString(16).slice(-6);
  function hash(s) {
    let h = 0;
    for (const ch of s) h = (h * 31 + ch.codePointAt(0)) | 0;
    return h;
  }

  function tile(label, n, key) {
    return el('div', { class: 'tile' }, el('span', { class: 'n', 'data-k': key }, n), el('span', { class: 'l' }, label));
  }

  function render(s) {
    const now = Date.parse(s.time);
    renderConnections(s.connections);
    renderEnds(s.ends, now);
    renderConsumers(s.consumers, s.max_lag_ns);
    renderProcess(s);
    renderChannels(s, now);
    renderJobs(s.jobs);
    document.body.dataset.snapshot = s.time; // tests wait on it
  }

  function renderConnections(c) {
    $('conn-tiles').replaceChildren(tile('total', c.total, 'conn-total'), ...TRANSPORTS.map((t) => tile(t, c.by_transport[t] || 0, 'conn-' + t)));
    setRows(
      $('conn-users'),
      c.users.map((u) =>
        el('tr', { 'data-user': u.sub }, el('td', { class: 'name' }, u.sub === '' ? '(open mode)' : u.sub), el('td', { class: 'num' }, u.total), ...TRANSPORTS.map((t) => el('td', { class: 'num' }, u.by_transport[t] || 0))),
      ),
    );
    $('conn-users-more').textContent = c.other_users ? `and ${c.other_users} more users` : '';
  }

  // The departure story: ends per reason over the last five minutes, as
  // stacked bars of 10 seconds, drawn as SVG.
  function renderEnds(e, now) {
    const BIN = 10_000;
    const N = 30;
    const end = Math.ceil(now / BIN) * BIN;
    const bins = Array.from({ length: N }, () => ({}));
    const reasons = new Set();
    for (const sec of e.recent) {
      const i = N - 1 - Math.floor((end - 1 - Date.parse(sec.time)) / BIN);
      if (i < 0 || i >= N) continue;
      for (const [r, n] of Object.entries(sec.reasons)) {
        bins[i][r] = (bins[i][r] || 0) + n;
        reasons.add(r);
      }
    }
    const order = [...reasons].sort();
    const max = Math.max(1, ...bins.map((b) => Object.values(b).reduce((a, n) => a + n, 0)));
    const W = 600;
    const H = 160;
    const top = 12;
    const bw = W / N;
    const root = svg('svg', { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: 'none', role: 'img', 'aria-label': 'connection ends by reason' });
    root.append(svg('line', { class: 'axis', x1: 0, y1: H, x2: W, y2: H }));
    bins.forEach((b, i) => {
      let y = H;
      for (const r of order) {
        const n = b[r] || 0;
        if (!n) continue;
        const h = ((H - top) * n) / max;
        y -= h;
        const rect = svg('rect', { x: i * bw + 1, y, width: bw - 2, height: h, fill: color(r) });
        const t = svg('title', {});
        t.textContent = `${r}: ${n}`;
        rect.append(t);
        root.append(rect);
      }
    });
    const labels = el('div', { class: 'chart-labels' }, el('span', {}, '−5 min'), el('span', { 'data-k': 'ends-peak' }, `max ${max} per 10 s`), el('span', {}, 'now'));
    $('ends-chart').replaceChildren(root, labels);

    const totals = new Map();
    for (const t of e.totals) totals.set(t.reason, (totals.get(t.reason) || 0) + t.count);
    $('ends-legend').replaceChildren(...[...totals.keys()].sort().map((r) => el('span', {}, el('span', { class: 'sw', 'data-color': r }), r)));
    for (const sw of $('ends-legend').querySelectorAll('.sw')) sw.style.background = color(sw.dataset.color);
    const rows = e.totals.slice().sort((a, b) => b.count - a.count || a.reason.localeCompare(b.reason));
    setRows($('ends-totals'), rows.map((t) => el('tr', { 'data-reason': t.reason, 'data-transport': t.transport }, el('td', {}, t.reason), el('td', {}, t.transport), el('td', { class: 'num', 'data-k': 'count' }, t.count))));
  }

  function renderConsumers(cs, maxLag) {
    $('max-lag').textContent = maxLag ? `ended as slow-consumer at ${fmtDur(maxLag)}` : '';
    setRows(
      $('consumers'),
      cs.map((c) =>
        el('tr', { 'data-conn': c.conn }, el('td', { class: 'name' }, c.conn), el('td', { class: 'name' }, c.sub), el('td', {}, c.transport), el('td', { class: 'num' }, c.lag_ns ? fmtDur(c.lag_ns) : '0'), el('td', { class: 'num' }, fmtBytes(c.queued_bytes))),
      ),
    );
  }

  function renderProcess(s) {
    const p = s.process;
    const kv = [
      ['mode', s.open ? 'open (no tokens)' : 'tokens'],
      ['goroutines', p.goroutines ? p.goroutines : '—'],
      ['resident memory', p.rss_bytes ? fmtBytes(p.rss_bytes) : '—'],
      ['heap in use', p.heap_bytes ? fmtBytes(p.heap_bytes) : '—'],
      ['snapshot', fmtTime(s.time)],
    ];
    $('process').replaceChildren(...kv.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]));
  }

  function renderChannels(s, now) {
    const r = s.retention;
    const parts = [];
    if (r.max_age_ns) parts.push(`max age ${fmtDur(r.max_age_ns)}`);
    if (r.max_messages) parts.push(`max ${r.max_messages} messages`);
    $('retention').textContent = 'retention: ' + (parts.length ? parts.join(', ') : 'unbounded');
    setRows(
      $('channels'),
      s.channels.map((c) => {
        const rate = c.rate === undefined ? '…' : (c.rate_at_least ? '≥' : '') + (c.rate < 10 ? c.rate.toFixed(1) : Math.round(c.rate));
        const pres = (c.presence || []).map((p) => el('span', { class: 'pill', title: `${p.transport} ${p.conn} since ${p.since}` }, p.sub || p.conn));
        if (c.presence && c.subscribers > c.presence.length) pres.push(el('span', { class: 'pill' }, `+${c.subscribers - c.presence.length}`));
        const by = Object.entries(c.by_transport).map(([t, n]) => `${t} ${n}`).join(', ');
        return el(
          'tr',
          { 'data-channel': c.channel },
          el('td', { class: 'name', title: c.channel }, c.channel),
          el('td', { class: 'num', title: by, 'data-k': 'subscribers' }, c.subscribers),
          el('td', { class: 'num' }, rate),
          el('td', {}, c.oldest ? fmtAgo(c.oldest, now) : '—'),
          el('td', { class: 'name' }, c.latest || '—'),
          el('td', {}, pres),
        );
      }),
    );
    $('channels-more').textContent = s.other_channels ? `and ${s.other_channels} more channels` : s.channels.length ? '' : 'no subscriptions on this node';
  }

  const STATES = ['queued', 'running', 'retrying', 'succeeded', 'failed', 'canceled'];
  function renderJobs(j) {
    $('sec-jobs').hidden = $('sec-workers').hidden = !j;
    if (!j) return;
    $('job-states').replaceChildren(...STATES.map((st) => tile(st, j.states[st] || 0, 'jobs-' + st)));
    setRows(
      $('jobs'),
      j.jobs.map((job) => {
        const final = ['succeeded', 'failed', 'canceled'].includes(job.state);
        const btn = final ? '' : el('button', { class: 'danger', type: 'button', 'data-cancel': job.id }, job.cancel_requested ? 'cancelling…' : 'Cancel');
        if (btn && job.cancel_requested) btn.disabled = true;
        return el(
          'tr',
          { 'data-job': job.id, 'data-state': job.state },
          el('td', { class: 'name', title: job.id }, job.id),
          el('td', { class: 'name' }, job.type),
          el('td', { class: 'state-' + job.state }, job.state + (job.cancel_reason ? ` (${job.cancel_reason})` : '')),
          el('td', { class: 'num' }, job.attempt ? `${job.attempt}/${job.max_attempts}` : '—'),
          el('td', { class: 'name' }, job.worker || '—'),
          el('td', {}, fmtTime(job.created)),
          el('td', {}, btn),
        );
      }),
    );
    setRows(
      $('workers'),
      j.workers.map((w) =>
        el(
          'tr',
          { 'data-worker': w.id },
          el('td', { class: 'name' }, w.id, w.draining ? ' (draining)' : '', w.suspect ? ' (suspect)' : ''),
          el('td', {}, w.types.length ? w.types.join(', ') : 'any'),
          el('td', { class: 'num' }, `${w.running.length}/${w.concurrency}`),
          el('td', {}, w.running.map((a) => el('span', { class: 'pill', title: `attempt ${a.attempt}, deadline ${a.deadline}` }, `${a.type} ${a.job}`))),
        ),
      ),
    );
  }

  async function cancelJob(id, btn) {
    btn.disabled = true;
    const res = await fetch('/v1/jobs/' + encodeURIComponent(id) + '/cancel', { method: 'POST', headers: authHeaders() }).catch(() => null);
    $('job-msg').textContent = !res ? `cancel ${id}: network error` : res.ok ? `cancel of ${id} requested` : `cancel ${id}: ${await errorOf(res)}`;
  }

  // Wiring.
  $('jobs').addEventListener('click', (ev) => {
    const b = ev.target.closest('button[data-cancel]');
    if (b) cancelJob(b.dataset.cancel, b);
  });
  $('login-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const t = $('token').value.trim();
    const res = await fetch('/v1/admin/snapshot', { headers: authHeaders(t), cache: 'no-store' }).catch(() => null);
    if (!res) return void ($('login-error').textContent = 'network error');
    if (!res.ok) return void ($('login-error').textContent = await errorOf(res));
    sessionStorage.setItem(TOKEN_KEY, t);
    $('token').value = '';
    render(await res.json());
    showDash();
    startStream();
  });
  $('logout').addEventListener('click', () => {
    sessionStorage.removeItem(TOKEN_KEY);
    showLogin('');
  });

  // First look: with a stored token, or none (open mode needs none).
  (async () => {
    const res = await fetch('/v1/admin/snapshot', { headers: authHeaders(), cache: 'no-store' }).catch(() => null);
    if (res && res.ok) {
      render(await res.json());
      showDash();
      startStream();
    } else if (res && (res.status === 401 || res.status === 403)) {
      const had = token() !== '';
      sessionStorage.removeItem(TOKEN_KEY);
      showLogin(had || res.status === 403 ? await errorOf(res) : '');
    } else {
      showLogin(res ? await errorOf(res) : 'network error');
    }
  })();
})();
