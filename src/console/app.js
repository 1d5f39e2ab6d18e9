// paykeep operator console (DESIGN §7). Plain JavaScript, no dependencies, embedded in the
// binary. Every action goes through the admin API with the token signed in with (kept in
// this tab's sessionStorage, sent as Bearer).
//
// The page is built from DOM nodes whose text is set as text (`el` turns strings into text
// nodes): nothing from the API is ever parsed as HTML.
'use strict';

const TOKEN_KEY = 'paykeep.admin_token';
const OPERATOR_KEY = 'paykeep.operator';
const SVG_NS = 'http://www.w3.org/2000/svg';
const DELIVERY_STATUSES = ['pending', 'sending', 'delivered', 'retry_scheduled', 'dead', 'paused'];
const PAGE_SIZE = 50;
// Pages of dead letters counted before a bulk redrive (500 each).
const COUNT_PAGES_MAX = 20;

const ui = {
  minorUnits: {},
  renderSeq: 0,
  contract: null,
};

// ---------------------------------------------------------------------------------------
// DOM helpers: strings always become text nodes.

function append(node, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(node, child);
    else if (child instanceof Node) node.appendChild(child);
    else node.appendChild(document.createTextNode(String(child)));
  }
  return node;
}

function setAttrs(node, attrs) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      node.addEventListener(key.slice(2), value);
    } else if (key === 'value') {
      node.value = value;
    } else if (key === 'checked') {
      node.checked = Boolean(value);
    } else {
      node.setAttribute(key, value === true ? '' : String(value));
    }
  }
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  setAttrs(node, attrs);
  return append(node, children);
}

function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  setAttrs(node, attrs);
  return append(node, children);
}

function table(headers, rows, attrs) {
  return el('div', { class: 'table-wrap' },
    el('table', attrs || {},
      el('thead', {}, el('tr', {}, headers.map((h) => el('th', { scope: 'col' }, h)))),
      el('tbody', {}, rows.length ? rows : el('tr', {}, el('td', { colspan: headers.length, class: 'muted' }, 'Nothing here.')))));
}

function fields(pairs) {
  return el('dl', { class: 'fields' }, pairs.filter((p) => p).map(([k, v]) => [el('dt', {}, k), el('dd', {}, v === null || v === undefined || v === '' ? '—' : v)]));
}

function status(value) {
  return el('span', { class: `status status-${value}` }, value);
}

function link(hash, text) {
  return el('a', { href: hash }, text);
}

// ---------------------------------------------------------------------------------------
// Formatting: times in UTC and local time, money in major units with its currency.

function pad(n, width) {
  return String(n).padStart(width || 2, '0');
}

function time(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const utc = `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} UTC`;
  const offset = -d.getTimezoneOffset();
  const sign = offset >= 0 ? '+' : '-';
  const zone = `UTC${sign}${pad(Math.floor(Math.abs(offset) / 60))}:${pad(Math.abs(offset) % 60)}`;
  const local = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())} local (${zone})`;
  return el('span', { class: 'time' }, el('time', { datetime: iso }, utc), el('span', { class: 'local' }, local));
}

function money(minor, currency) {
  if (minor === null || minor === undefined) return '—';
  const exponent = currency in ui.minorUnits ? ui.minorUnits[currency] : 2;
  const negative = minor < 0;
  const digits = String(Math.abs(minor));
  let text = digits;
  if (exponent > 0) {
    const padded = digits.padStart(exponent + 1, '0');
    text = `${padded.slice(0, -exponent)}.${padded.slice(-exponent)}`;
  }
  return `${negative ? '-' : ''}${text}${currency ? ` ${currency}` : ''}`;
}

function duration(seconds) {
  if (seconds < 60) return `${seconds} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${seconds % 60} s`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ${Math.floor((seconds % 3600) / 60)} min`;
  return `${Math.floor(seconds / 86400)} d ${Math.floor((seconds % 86400) / 3600)} h`;
}

// ---------------------------------------------------------------------------------------
// The admin API.

class ApiError extends Error {
  constructor(httpStatus, title, detail, code) {
    super(`${title}: ${detail}`);
    this.httpStatus = httpStatus;
    this.title = title;
    this.detail = detail;
    this.code = code;
  }
}

function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

async function api(method, path, options) {
  const opts = options || {};
  const headers = { Accept: 'application/json, application/problem+json', Authorization: `Bearer ${token() || ''}` };
  let body;
  if (opts.csv !== undefined) {
    headers['Content-Type'] = 'text/csv';
    body = opts.csv;
  } else if (opts.json !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(opts.json);
  }
  let response;
  try {
    response = await fetch(path, { method, headers, body, cache: 'no-store', credentials: 'omit' });
  } catch (e) {
    throw new ApiError(0, 'paykeep could not be reached', `${method} ${path}: ${e && e.message ? e.message : e}`);
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch (e) {
    data = null;
  }
  if (!response.ok) {
    const problem = data && typeof data === 'object' ? data : {};
    const title = problem.title || `HTTP ${response.status} ${response.statusText}`;
    const detail = problem.detail || (text ? text.slice(0, 300) : `${method} ${path} answered ${response.status}`);
    const error = new ApiError(response.status, title, detail, problem.code);
    if (response.status === 401) {
      error.handled = true;
      signOut(error);
    }
    throw error;
  }
  return data;
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== null && v !== undefined && v !== '') q.set(k, v);
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

// ---------------------------------------------------------------------------------------
// Problems on the page: title and detail, never only in the browser's console.

function problemBox(error, context) {
  const title = error instanceof ApiError ? error.title : 'Something went wrong in the console';
  const detail = error instanceof ApiError ? error.detail : String(error && error.message ? error.message : error);
  return el('div', { class: 'problem', role: 'alert' },
    el('span', { class: 'title' }, context ? `${context}: ${title}` : title),
    el('span', { class: 'detail' }, detail));
}

function showBanner(error, context) {
  if (error && error.handled) return;
  const banner = document.getElementById('banner');
  const box = problemBox(error, context);
  box.appendChild(el('button', { type: 'button', class: 'secondary', onclick: () => banner.replaceChildren() }, 'Dismiss'));
  banner.replaceChildren(box);
}

function clearBanner() {
  document.getElementById('banner').replaceChildren();
}

window.addEventListener('error', (event) => showBanner(event.error || event.message));
window.addEventListener('unhandledrejection', (event) => showBanner(event.reason));

// Runs an action from a button: disables it meanwhile, shows a failure in the banner.
async function act(button, context, action) {
  if (button) button.disabled = true;
  clearBanner();
  try {
    return await action();
  } catch (e) {
    showBanner(e, context);
    return undefined;
  } finally {
    if (button && button.isConnected) button.disabled = false;
  }
}

function confirmDialog(text, okLabel) {
  const dialog = document.getElementById('confirm');
  document.getElementById('confirm-text').textContent = text;
  document.getElementById('confirm-ok').textContent = okLabel;
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true });
    dialog.returnValue = '';
    dialog.showModal();
    document.getElementById('confirm-ok').focus();
  });
}

// ---------------------------------------------------------------------------------------
// Sign-in.

function signOut(error) {
  sessionStorage.removeItem(TOKEN_KEY);
  showSignIn(error);
}

function showSignIn(error) {
  document.getElementById('nav').hidden = true;
  document.getElementById('sign-out').hidden = true;
  clearBanner();
  const input = el('input', { type: 'password', id: 'token', name: 'token', autocomplete: 'off', required: true });
  const message = el('div', { id: 'sign-in-message', role: 'alert' });
  if (error) {
    message.appendChild(problemBox(error, error.httpStatus === 401 ? 'The admin token was refused' : 'Could not sign in'));
  }
  const form = el('form', { id: 'sign-in' },
    el('label', { for: 'token' }, 'Admin token (admin.token)', input),
    el('button', { type: 'submit', id: 'sign-in-button' }, 'Sign in'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, input.value.trim());
    const button = document.getElementById('sign-in-button');
    button.disabled = true;
    try {
      await loadOverview();
      if (!location.hash || location.hash === '#' || location.hash === '#/') location.hash = '#/overview';
      render();
    } catch (e) {
      if (!e.handled) {
        sessionStorage.removeItem(TOKEN_KEY);
        showSignIn(e);
      }
    }
  });
  document.getElementById('main').replaceChildren(
    el('section', { class: 'card sign-in' },
      el('h1', {}, 'Sign in'),
      el('p', { class: 'muted' }, 'The token is kept in this tab only and sent as a Bearer token with every call.'),
      message, form));
  input.focus();
}

async function loadOverview() {
  const overview = await api('GET', '/admin/overview');
  ui.minorUnits = overview.minor_units || {};
  return overview;
}

// What the console takes from the service's OpenAPI document instead of keeping its own
// copy, so a new channel needs no console edit: the channel names (the `Channel` enum) and,
// per settings section, the keys that are secrets (`"format": "password"`). Read once per
// page load.
async function contract() {
  if (ui.contract) return ui.contract;
  const doc = await api('GET', '/openapi.json');
  const schemas = (doc && doc.components && doc.components.schemas) || {};
  const channels = (schemas.Channel && schemas.Channel.enum) || [];
  const sections = (schemas.NotificationsSection || {}).properties || {};
  const secretKeys = {};
  for (const [section, schema] of Object.entries(sections)) {
    secretKeys[section] = Object.entries(schema.properties || {}).filter(([, p]) => p.format === 'password').map(([key]) => key);
  }
  ui.contract = { channels, secretKeys };
  return ui.contract;
}

// ---------------------------------------------------------------------------------------
// Router: #/view/arg?params

function route() {
  const hash = location.hash.replace(/^#\/?/, '');
  const [path, q] = hash.split('?');
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  return { view: parts[0] || 'overview', arg: parts[1], params: new URLSearchParams(q || '') };
}

const VIEWS = {
  overview: overviewView,
  deliveries: deliveriesView,
  delivery: deliveryView,
  events: eventsView,
  settings: settingsView,
  reconciliations: reconciliationsView,
  reconciliation: reconciliationView,
  payments: paymentsView,
  webhook_endpoints: webhookEndpointsView,
};

async function render() {
  if (!token()) {
    showSignIn();
    return;
  }
  document.getElementById('nav').hidden = false;
  document.getElementById('sign-out').hidden = false;
  const r = route();
  const navKey = r.view === 'deliveries' && r.params.get('status') === 'dead' && !r.params.get('channel') ? 'dead' : r.view;
  for (const a of document.querySelectorAll('#nav a')) {
    if (a.dataset.view === navKey) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  const main = document.getElementById('main');
  const seq = ++ui.renderSeq;
  clearBanner();
  main.replaceChildren(el('p', { class: 'loading' }, 'Loading…'));
  const view = VIEWS[r.view];
  let node;
  try {
    if (!Object.keys(ui.minorUnits).length && r.view !== 'overview') await loadOverview();
    node = view ? await view(r) : el('div', {}, el('h1', {}, 'Not found'), el('p', {}, `There is no view called ${r.view}.`));
  } catch (e) {
    if (e.handled) return;
    node = el('div', {}, el('h1', {}, 'Could not load this view'), problemBox(e));
  }
  if (seq !== ui.renderSeq) return;
  main.replaceChildren(node);
  document.title = `${(main.querySelector('h1') || {}).textContent || 'paykeep'} · paykeep console`;
}

function rerender() {
  return render();
}

// ---------------------------------------------------------------------------------------
// Overview.

async function overviewView() {
  const o = await loadOverview();
  const checks = Object.entries((o.readiness && o.readiness.checks) || {});
  const readiness = el('section', { class: 'card', id: 'readiness' },
    el('h2', {}, 'Readiness ', status(o.readiness.status)),
    table(['check', 'status', 'latency'], checks.map(([name, c]) => el('tr', {},
      el('td', {}, name),
      el('td', {}, status(c.status)),
      el('td', { class: 'num' }, `${Number(c.latency_ms).toFixed(2)} ms`)))));
  const notReady = o.ready ? null : el('div', { class: 'problem', role: 'alert', id: 'not-ready' },
    el('span', { class: 'title' }, 'Service not ready'),
    el('span', { class: 'detail' }, `Failing checks: ${checks.filter(([, c]) => c.status !== 'ok').map(([n]) => n).join(', ') || 'unknown'}. /readyz answers 503 until they pass.`));

  const byStatus = o.deliveries.by_status || {};
  const dead = byStatus.dead || 0;
  const deliveries = el('section', { class: 'card', id: 'deliveries-by-status' },
    el('h2', {}, 'Deliveries by status'),
    el('ul', { class: 'counts' }, DELIVERY_STATUSES.map((s) => el('li', {},
      el('a', { href: `#/deliveries?status=${s}`, class: s === 'dead' && dead > 0 ? 'dead' : null, id: `count-${s}` },
        `${s === 'dead' ? 'dead letters' : s}: ${byStatus[s] || 0}`)))));

  const paused = el('section', { class: 'card', id: 'paused-channels' },
    el('h2', {}, 'Paused channels'),
    o.paused_channels.length
      ? el('ul', {}, o.paused_channels.map((p) => el('li', {},
        el('strong', {}, p.channel), ' — ', p.reason || 'credentials rejected', p.since ? [' — since ', time(p.since)] : null, ' ',
        link(`#/deliveries?status=paused&channel=${p.channel}`, 'paused deliveries'), ' · ', link('#/settings', 'fix in settings'))))
      : el('p', { class: 'muted' }, 'None: every enabled channel is sending.'));

  const oldest = o.oldest_undelivered;
  const oldestCard = el('section', { class: 'card', id: 'oldest-undelivered' },
    el('h2', {}, 'Oldest undelivered event'),
    oldest
      ? fields([
        ['event', `${oldest.event_type}${oldest.title ? ` — ${oldest.title}` : ''}`],
        ['created', time(oldest.created_at)],
        ['waiting for', duration(oldest.age_s)],
        ['delivery', [link(`#/delivery/${encodeURIComponent(oldest.delivery_id)}`, oldest.delivery_id), ' ', status(oldest.status), ` on ${oldest.channel}`]],
      ])
      : el('p', { class: 'muted' }, 'Nothing is waiting: every event has been delivered or dead-lettered.'));

  const p = o.payments;
  const payments = el('section', { class: 'card', id: 'payments-per-minute' },
    el('h2', {}, 'Payment creates per minute, last hour'),
    el('p', {}, el('span', { class: 'big', id: 'created-this-minute' }, String(p.this_minute.created)), ' created, ',
      el('span', { class: 'big', id: 'failed-this-minute' }, String(p.this_minute.failed)), ' failed this minute'),
    chart(p.per_minute),
    el('div', { class: 'legend' },
      el('span', {}, el('span', { class: 'swatch swatch-created' }), 'created'),
      el('span', {}, el('span', { class: 'swatch swatch-failed' }), 'failed')),
    el('p', { class: 'muted' }, 'Counted since this process started: ', time(p.history_since)));

  return el('div', { id: 'overview' },
    el('h1', {}, 'Overview'),
    notReady,
    el('p', { class: 'muted' }, 'As of ', time(o.generated_at), ' ',
      el('button', { type: 'button', class: 'secondary', onclick: rerender }, 'Refresh')),
    dead > 0 ? el('div', { class: 'notice' }, el('strong', {}, `${dead} dead letter${dead === 1 ? '' : 's'}. `),
      link('#/deliveries?status=dead', 'Open the dead letters')) : null,
    el('div', { class: 'grid' }, readiness, deliveries),
    payments,
    el('div', { class: 'grid' }, paused, oldestCard));
}

// A bar chart of the last hour drawn as inline SVG: created per minute, failed on top in red.
function chart(perMinute) {
  const width = 1200;
  const height = 180;
  const left = 40;
  const bottom = 20;
  const plotHeight = height - bottom - 10;
  const max = Math.max(1, ...perMinute.map((m) => m.created));
  const barWidth = (width - left) / Math.max(1, perMinute.length);
  const total = perMinute.reduce((a, m) => a + m.created, 0);
  const failed = perMinute.reduce((a, m) => a + m.failed, 0);
  const node = svg('svg', { class: 'chart', id: 'chart', viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': `Last hour: ${total} payment attempts, ${failed} failed` });
  node.appendChild(svg('line', { class: 'axis', x1: left, y1: height - bottom, x2: width, y2: height - bottom }));
  node.appendChild(svg('text', { x: 0, y: 14 }, String(max)));
  node.appendChild(svg('text', { x: 0, y: height - bottom }, '0'));
  node.appendChild(svg('text', { x: left, y: height - 4 }, '−60 min'));
  node.appendChild(svg('text', { x: width - 30, y: height - 4, 'text-anchor': 'end' }, 'now'));
  perMinute.forEach((m, i) => {
    const x = left + i * barWidth + 1;
    const h = (m.created / max) * plotHeight;
    const fh = (m.failed / max) * plotHeight;
    const label = `${m.minute.slice(11, 16)} UTC: ${m.created} created, ${m.failed} failed`;
    const group = svg('g', {}, svg('title', {}, label));
    if (m.created > 0) group.appendChild(svg('rect', { class: 'bar-created', x, y: height - bottom - h, width: Math.max(1, barWidth - 2), height: h }));
    if (m.failed > 0) group.appendChild(svg('rect', { class: 'bar-failed', x, y: height - bottom - fh, width: Math.max(1, barWidth - 2), height: fh }));
    node.appendChild(group);
  });
  return node;
}

// ---------------------------------------------------------------------------------------
// Deliveries and dead letters.

function deliveriesHash(params) {
  return `#/deliveries${query(params)}`;
}

async function deliveriesView(r) {
  const filter = { status: r.params.get('status') || '', channel: r.params.get('channel') || '' };
  const after = r.params.get('after') || '';
  const page = await api('GET', `/admin/deliveries${query({ ...filter, limit: PAGE_SIZE, after })}`);
  const { channels } = await contract();
  const statusSelect = el('select', { id: 'filter-status', name: 'status' },
    el('option', { value: '' }, 'any status'),
    DELIVERY_STATUSES.map((s) => el('option', { value: s }, s)));
  statusSelect.value = filter.status;
  const channelSelect = el('select', { id: 'filter-channel', name: 'channel' },
    el('option', { value: '' }, 'any channel'),
    channels.map((c) => el('option', { value: c }, c)));
  channelSelect.value = filter.channel;
  const filters = el('form', { class: 'filters', id: 'delivery-filters' },
    el('label', {}, 'Status', statusSelect),
    el('label', {}, 'Channel', channelSelect),
    el('button', { type: 'submit' }, 'Apply'));
  filters.addEventListener('submit', (event) => {
    event.preventDefault();
    location.hash = deliveriesHash({ status: statusSelect.value, channel: channelSelect.value });
  });
  const rows = page.data.map((d) => el('tr', { 'data-id': d.id },
    el('td', {}, link(`#/delivery/${encodeURIComponent(d.id)}`, d.id)),
    el('td', {}, d.event_type),
    el('td', {}, d.channel, d.target ? ` → ${d.target}` : ''),
    el('td', {}, status(d.status)),
    el('td', { class: 'num' }, String(d.attempt_count)),
    el('td', {}, d.reason || ''),
    el('td', {}, time(d.updated_at)),
    el('td', {}, d.status === 'dead' ? el('button', {
      type: 'button', class: 'secondary redrive-one', onclick: (e) => redriveOne(e.currentTarget, d.id),
    }, 'Redrive') : '')));
  const isDead = filter.status === 'dead';
  const bulk = isDead ? el('div', { class: 'actions' },
    el('button', { type: 'button', class: 'danger', id: 'redrive-all', onclick: (e) => redriveAll(e.currentTarget, filter.channel) },
      filter.channel ? `Redrive all dead letters of ${filter.channel}…` : 'Redrive all dead letters…'),
    el('span', { id: 'redrive-result', role: 'status' })) : null;
  return el('div', { id: 'deliveries' },
    el('h1', {}, isDead ? 'Dead letters' : 'Deliveries'),
    filters,
    bulk,
    table(['delivery', 'event', 'channel', 'status', 'attempts', 'reason', 'updated', ''], rows, { id: 'deliveries-table' }),
    el('div', { class: 'pager' },
      after ? link(deliveriesHash(filter), 'First page') : null,
      page.has_more ? link(deliveriesHash({ ...filter, after: page.next_after }), 'Next page') : null,
      el('button', { type: 'button', class: 'secondary', onclick: rerender }, 'Refresh')));
}

async function redriveOne(button, id) {
  await act(button, `Redrive ${id}`, async () => {
    await api('POST', `/admin/deliveries/${encodeURIComponent(id)}/redrive`);
    await render();
  });
}

// Counts the dead letters the bulk redrive would take (paging the list), asks, redrives.
async function redriveAll(button, channel) {
  await act(button, 'Bulk redrive', async () => {
    let count = 0;
    let after = '';
    let more = true;
    for (let pages = 0; more && pages < COUNT_PAGES_MAX; pages += 1) {
      const page = await api('GET', `/admin/deliveries${query({ status: 'dead', channel, limit: 500, after })}`);
      count += page.data.length;
      more = page.has_more;
      after = page.next_after || '';
    }
    const countText = `${count}${more ? '+' : ''}`;
    if (count === 0) {
      document.getElementById('redrive-result').textContent = 'There are no dead letters to redrive.';
      return;
    }
    const what = `${countText} dead deliver${count === 1 && !more ? 'y' : 'ies'}${channel ? ` of channel ${channel}` : ''}`;
    const ok = await confirmDialog(`Redrive ${what}? They go back to pending with a fresh retry budget.`, `Redrive ${countText}`);
    if (!ok) return;
    const done = await api('POST', `/admin/deliveries/redrive${query({ channel })}`);
    await render();
    const result = document.getElementById('redrive-result');
    if (result) result.textContent = `Redriven: ${done.redriven}${done.has_more ? ' (more remain: run it again)' : ''}.`;
  });
}

async function deliveryView(r) {
  const d = await api('GET', `/admin/deliveries/${encodeURIComponent(r.arg || '')}`);
  const attempts = (d.attempts || []).map((a) => el('tr', {},
    el('td', {}, time(a.at)),
    el('td', {}, a.outcome),
    el('td', { class: 'num' }, a.http_status === null || a.http_status === undefined ? '—' : String(a.http_status)),
    el('td', {}, a.error ? el('pre', {}, a.error) : '—'),
    el('td', { class: 'num' }, a.duration_ms === undefined || a.duration_ms === null ? '—' : `${a.duration_ms} ms`)));
  return el('div', { id: 'delivery' },
    el('h1', {}, 'Delivery ', el('span', { class: 'mono' }, d.id)),
    el('section', { class: 'card' },
      fields([
        ['status', el('span', { id: 'delivery-status' }, status(d.status))],
        ['event', [d.event_type, ' ', el('span', { class: 'mono' }, d.event_id)]],
        ['channel', d.channel],
        ['target', d.target],
        ['attempts (budget)', String(d.attempt_count)],
        ['reason', d.reason],
        ['next attempt', time(d.next_attempt_at)],
        ['created', time(d.created_at)],
        ['updated', time(d.updated_at)],
        ['delivered', time(d.delivered_at)],
      ]),
      el('div', { class: 'actions' },
        d.status === 'dead' ? el('button', { type: 'button', id: 'redrive', onclick: (e) => redriveOne(e.currentTarget, d.id) }, 'Redrive') : null,
        el('button', { type: 'button', class: 'secondary', id: 'refresh', onclick: rerender }, 'Refresh'),
        link(deliveriesHash({ status: d.status }), `All ${d.status} deliveries`))),
    el('h2', {}, 'Attempts'),
    table(['at', 'outcome', 'HTTP', 'error', 'duration'], attempts, { id: 'attempts' }));
}

// ---------------------------------------------------------------------------------------
// Events.

function entityLink(e) {
  if (e.entity_type === 'payment') return link(`#/payments${query({ id: e.entity_id })}`, `payment ${e.entity_id}`);
  if (e.entity_type === 'refund' && e.payload && e.payload.payment_id) {
    return link(`#/payments${query({ id: e.payload.payment_id })}`, `refund ${e.entity_id}`);
  }
  if (e.entity_type === 'reconciliation') return link(`#/reconciliation/${encodeURIComponent(e.entity_id)}`, `reconciliation ${e.entity_id}`);
  return `${e.entity_type} ${e.entity_id}`;
}

function eventRows(events) {
  return events.map((e) => el('tr', {},
    el('td', { class: 'num' }, e.sequence || ''),
    el('td', {}, time(e.created_at)),
    el('td', {}, e.type),
    el('td', {}, status(e.level)),
    el('td', {}, e.title),
    el('td', {}, entityLink(e)),
    el('td', {}, el('details', {}, el('summary', {}, 'payload'), el('pre', {}, JSON.stringify(e.payload, null, 2))))));
}

// Opens at the newest page (the outbox is paged oldest first by sequence number).
async function eventsView(r) {
  let after = r.params.get('after');
  if (after === null) {
    const overview = await loadOverview();
    after = String(Math.max(0, Number(overview.events.last_sequence) - PAGE_SIZE));
  }
  const page = await api('GET', `/admin/events${query({ limit: PAGE_SIZE, after: after === '0' ? '' : after })}`);
  const older = Number(after) > 0 ? String(Math.max(0, Number(after) - PAGE_SIZE)) : null;
  return el('div', { id: 'events' },
    el('h1', {}, 'Events'),
    el('p', { class: 'muted' }, 'The outbox, oldest first within a page.'),
    el('div', { class: 'pager' },
      older !== null ? link(`#/events${query({ after: older })}`, 'Older') : null,
      page.has_more ? link(`#/events${query({ after: page.next_after })}`, 'Newer') : null,
      link('#/events', 'Newest'),
      el('button', { type: 'button', class: 'secondary', onclick: rerender }, 'Refresh')),
    table(['seq', 'created', 'type', 'level', 'title', 'about', ''], eventRows(page.data), { id: 'events-table' }));
}

// ---------------------------------------------------------------------------------------
// Notification settings: toggles and targets editable, secrets write-only.

function settingInput(section, key, value, secretKeys) {
  const id = `set-${section}-${key}`;
  const secret = secretKeys.includes(key);
  let input;
  if (typeof value === 'boolean') {
    input = el('input', { type: 'checkbox', id, checked: value });
    return { node: el('label', { class: 'check', for: id }, input, key), read: () => input.checked, changed: () => input.checked !== value };
  }
  if (typeof value === 'number') {
    input = el('input', { type: 'number', id, step: 'any', value: String(value) });
    return { node: el('label', { for: id }, key, input), read: () => Number(input.value), changed: () => Number(input.value) !== value };
  }
  if (Array.isArray(value)) {
    const numbers = value.length > 0 && typeof value[0] === 'number';
    const text = value.join('\n');
    input = el('textarea', { id, rows: Math.max(2, value.length), value: text });
    const read = () => input.value.split(/[\n,]/).map((s) => s.trim()).filter((s) => s).map((s) => (numbers ? Number(s) : s));
    return { node: el('label', { for: id }, `${key} (one per line)`, input), read, changed: () => input.value !== text };
  }
  if (secret) {
    input = el('input', { type: 'password', id, autocomplete: 'new-password', placeholder: value ? `set (${value}); type to replace` : 'not set' });
    return { node: el('label', { for: id }, `${key} (write-only)`, input), read: () => input.value, changed: () => input.value !== '' };
  }
  input = el('input', { type: 'text', id, value: value === null || value === undefined ? '' : String(value) });
  return { node: el('label', { for: id }, key, input), read: () => input.value, changed: () => input.value !== (value || '') };
}

// The inputs of one settings section; `secretKeys` are its write-only keys.
function settingsSection(section, values, secretKeys, extra) {
  const inputs = {};
  const nodes = [];
  for (const [key, value] of Object.entries(values)) {
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) continue;
    inputs[key] = settingInput(section, key, value, secretKeys || []);
    nodes.push(inputs[key].node);
  }
  const changes = () => {
    const body = {};
    for (const [key, input] of Object.entries(inputs)) {
      if (input.changed()) body[key] = input.read();
    }
    return body;
  };
  return { node: el('div', { class: 'settings-fields' }, nodes, extra || null), changes };
}

async function pausedReason(channel) {
  try {
    const page = await api('GET', `/admin/deliveries${query({ status: 'paused', channel, limit: 1 })}`);
    return page.data.length ? page.data[0].reason : null;
  } catch (e) {
    if (e.handled) throw e;
    return null;
  }
}

async function settingsView() {
  const answer = await api('GET', '/admin/settings/notifications');
  const { channels, secretKeys } = await contract();
  const s = answer.settings;
  const paused = answer.paused_channels || [];
  const reasons = {};
  for (const channel of paused) reasons[channel] = await pausedReason(channel);

  const save = async (button, label, body, result) => {
    await act(button, `Saving ${label}`, async () => {
      await api('PUT', '/admin/settings/notifications', { json: body });
      await render();
      const note = document.getElementById(result);
      if (note) note.textContent = `Saved ${label}.`;
    });
  };

  const general = settingsSection('general', s, []);
  const generalForm = el('fieldset', { id: 'settings-general' },
    el('legend', {}, 'General'),
    general.node,
    el('div', { class: 'actions' },
      el('button', { type: 'button', id: 'save-general', onclick: (e) => save(e.currentTarget, 'general settings', general.changes(), 'saved-general') }, 'Save general settings'),
      el('span', { id: 'saved-general', class: 'ok-note', role: 'status' })));

  const channelForms = channels.filter((c) => s[c] && typeof s[c] === 'object').map((channel) => {
    const section = settingsSection(channel, s[channel], secretKeys[channel]);
    const isPaused = paused.includes(channel);
    return el('fieldset', { id: `settings-${channel}` },
      el('legend', {}, channel, ' ', isPaused ? status('paused') : (s[channel].enabled ? status('ok') : el('span', { class: 'muted' }, '(off)'))),
      isPaused ? el('div', { class: 'notice', id: `paused-${channel}` },
        el('strong', {}, 'Paused: '), reasons[channel] || 'the channel\'s credentials were rejected',
        '. Saving this channel (with corrected credentials) resumes it.') : null,
      section.node,
      el('div', { class: 'actions' },
        el('button', { type: 'button', id: `save-${channel}`, onclick: (e) => save(e.currentTarget, `${channel} settings`, { [channel]: section.changes() }, `saved-${channel}`) },
          isPaused ? `Save and resume ${channel}` : `Save ${channel}`),
        el('span', { id: `saved-${channel}`, class: 'ok-note', role: 'status' })));
  });

  return el('div', { id: 'settings' },
    el('h1', {}, 'Notification settings'),
    el('p', { class: 'muted' }, 'Changes are validated, persisted and in force at once. Secrets are write-only: leave a secret empty to keep it.'),
    generalForm,
    channelForms,
    el('div', { class: 'actions' },
      el('button', { type: 'button', class: 'secondary', id: 'send-test', onclick: (e) => act(e.currentTarget, 'Test notification', async () => {
        const sent = await api('POST', '/admin/notifications/test');
        document.getElementById('test-result').textContent = `Test event ${sent.event.id} queued to ${sent.deliveries.length} target(s).`;
      }) }, 'Send a test notification'),
      el('span', { id: 'test-result', role: 'status' })));
}

// ---------------------------------------------------------------------------------------
// Reconciliation.

function utcDay(offsetDays) {
  const d = new Date(Date.now() + offsetDays * 86400000);
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`;
}

function totals(report) {
  const currencies = Object.entries(report.totals_by_currency || {});
  if (currencies.length === 1) {
    const [currency] = currencies[0];
    return { ours: money(report.our_total, currency), provider: money(report.provider_total, currency) };
  }
  if (currencies.length === 0) return { ours: money(report.our_total, ''), provider: money(report.provider_total, '') };
  return {
    ours: currencies.map(([c, t]) => money(t.ours, c)).join(', '),
    provider: currencies.map(([c, t]) => money(t.provider, c)).join(', '),
  };
}

async function reconciliationsView(r) {
  const after = r.params.get('after') || '';
  const page = await api('GET', `/admin/reconciliations${query({ limit: PAGE_SIZE, after })}`);
  const runDate = el('input', { type: 'date', id: 'run-date', required: true, value: utcDay(-1), max: utcDay(0) });
  const runForm = el('form', { class: 'inline', id: 'run-form' },
    el('label', { for: 'run-date' }, 'UTC day', runDate),
    el('button', { type: 'submit', id: 'run-button' }, 'Reconcile against the provider'));
  runForm.addEventListener('submit', (event) => {
    event.preventDefault();
    act(document.getElementById('run-button'), 'Reconciliation', async () => {
      const report = await api('POST', '/admin/reconciliations', { json: { date: runDate.value } });
      location.hash = `#/reconciliation/${encodeURIComponent(report.id)}`;
    });
  });
  const csvDate = el('input', { type: 'date', id: 'csv-date', required: true, value: utcDay(-1), max: utcDay(0) });
  const csvFile = el('input', { type: 'file', id: 'csv-file', accept: '.csv,text/csv', required: true });
  const csvForm = el('form', { class: 'inline', id: 'csv-form' },
    el('label', { for: 'csv-date' }, 'UTC day', csvDate),
    el('label', { for: 'csv-file' }, 'Settlement report (provider_payment_id,amount,currency,status)', csvFile),
    el('button', { type: 'submit', id: 'csv-button' }, 'Upload and reconcile'));
  csvForm.addEventListener('submit', (event) => {
    event.preventDefault();
    act(document.getElementById('csv-button'), 'Reconciliation upload', async () => {
      const file = csvFile.files[0];
      if (!file) throw new Error('Choose a CSV file first.');
      const report = await api('POST', `/admin/reconciliations${query({ date: csvDate.value })}`, { csv: await file.text() });
      location.hash = `#/reconciliation/${encodeURIComponent(report.id)}`;
    });
  });
  const rows = page.data.map((rep) => {
    const t = totals(rep);
    return el('tr', {},
      el('td', {}, link(`#/reconciliation/${encodeURIComponent(rep.id)}`, rep.date)),
      el('td', {}, rep.source),
      el('td', { class: 'num' }, `${rep.our_count} · ${t.ours}`),
      el('td', { class: 'num' }, `${rep.provider_count} · ${t.provider}`),
      el('td', { class: 'num' }, rep.discrepancy_count > 0 ? status(`${rep.discrepancy_count}`) : '0'),
      el('td', {}, time(rep.created_at)));
  });
  return el('div', { id: 'reconciliations' },
    el('h1', {}, 'Reconciliation'),
    el('section', { class: 'card' }, el('h2', {}, 'Run a day'), runForm),
    el('section', { class: 'card' }, el('h2', {}, 'Upload a settlement report'), csvForm),
    el('h2', {}, 'Reports (oldest first)'),
    table(['day', 'source', 'ours (count · total)', 'provider (count · total)', 'discrepancies', 'run at'], rows, { id: 'reports' }),
    el('div', { class: 'pager' },
      after ? link('#/reconciliations', 'First page') : null,
      page.has_more ? link(`#/reconciliations${query({ after: page.next_after })}`, 'Next page') : null));
}

function discrepancyRow(d) {
  const resolution = d.resolved
    ? el('div', { class: 'resolved' }, status('resolved'), ' ', d.resolution, el('div', { class: 'muted' }, `by ${d.resolved_by} `, time(d.resolved_at)))
    : resolveForm(d);
  return el('tr', { id: `dis-${d.id}` },
    el('td', {}, d.type),
    el('td', {}, d.payment_id ? link(`#/payments${query({ id: d.payment_id })}`, d.payment_id) : '—', d.refund_id ? ` (refund ${d.refund_id})` : ''),
    el('td', { class: 'mono' }, d.provider_payment_id || '—'),
    el('td', { class: 'num' }, money(d.our_amount, d.our_currency || d.provider_currency)),
    el('td', { class: 'num' }, money(d.provider_amount, d.provider_currency || d.our_currency)),
    el('td', {}, `${d.our_status || '—'} / ${d.provider_status || '—'}`),
    el('td', {}, resolution));
}

function resolveForm(d) {
  const resolution = el('input', { type: 'text', name: 'resolution', id: `resolution-${d.id}`, required: true, maxlength: 1000 });
  const operator = el('input', { type: 'text', name: 'operator', id: `operator-${d.id}`, required: true, maxlength: 64, value: localStorage.getItem(OPERATOR_KEY) || '' });
  const button = el('button', { type: 'submit', id: `resolve-${d.id}` }, 'Resolve');
  const form = el('form', { class: 'inline resolve' },
    el('label', { for: resolution.id }, 'Resolution', resolution),
    el('label', { for: operator.id }, 'Operator', operator),
    button);
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    act(button, `Resolve ${d.id}`, async () => {
      localStorage.setItem(OPERATOR_KEY, operator.value.trim());
      const done = await api('POST', `/admin/discrepancies/${encodeURIComponent(d.id)}/resolve`, { json: { resolution: resolution.value.trim(), operator: operator.value.trim() } });
      const row = document.getElementById(`dis-${d.id}`);
      if (row) row.replaceWith(discrepancyRow(done));
    });
  });
  return form;
}

async function reconciliationView(r) {
  const rep = await api('GET', `/admin/reconciliations/${encodeURIComponent(r.arg || '')}`);
  const t = totals(rep);
  return el('div', { id: 'reconciliation' },
    el('h1', {}, `Reconciliation of ${rep.date}`),
    el('section', { class: 'card' }, fields([
      ['report', el('span', { class: 'mono' }, rep.id)],
      ['source', rep.source],
      ['ours', `${rep.our_count} records, ${t.ours}`],
      ['provider', `${rep.provider_count} records, ${t.provider}`],
      ['discrepancies', el('span', { id: 'discrepancy-count' }, String(rep.discrepancy_count))],
      rep.discrepancies_dropped ? ['not stored', `${rep.discrepancies_dropped} beyond the per-report limit`] : null,
      ['run at', time(rep.created_at)],
    ])),
    el('h2', {}, 'Discrepancies'),
    table(['type', 'payment', 'provider id', 'our amount', 'provider amount', 'status ours / provider', 'resolution'],
      rep.discrepancies.map(discrepancyRow), { id: 'discrepancies' }),
    link('#/reconciliations', 'All reports'));
}

// ---------------------------------------------------------------------------------------
// Payment lookup.

async function paymentsView(r) {
  const id = r.params.get('id') || '';
  const merchant = r.params.get('merchant_id') || '';
  const order = r.params.get('order_no') || '';
  const idInput = el('input', { type: 'text', id: 'lookup-id', name: 'id', value: id, placeholder: 'pay_…' });
  const byId = el('form', { class: 'inline', id: 'lookup-by-id' },
    el('label', { for: 'lookup-id' }, 'Payment id', idInput),
    el('button', { type: 'submit' }, 'Find by id'));
  byId.addEventListener('submit', (event) => {
    event.preventDefault();
    location.hash = `#/payments${query({ id: idInput.value.trim() })}`;
  });
  const merchantInput = el('input', { type: 'text', id: 'lookup-merchant', name: 'merchant_id', value: merchant });
  const orderInput = el('input', { type: 'text', id: 'lookup-order', name: 'order_no', value: order });
  const byOrder = el('form', { class: 'inline', id: 'lookup-by-order' },
    el('label', { for: 'lookup-merchant' }, 'Merchant id', merchantInput),
    el('label', { for: 'lookup-order' }, 'Order number', orderInput),
    el('button', { type: 'submit' }, 'Find by order'));
  byOrder.addEventListener('submit', (event) => {
    event.preventDefault();
    location.hash = `#/payments${query({ merchant_id: merchantInput.value.trim(), order_no: orderInput.value })}`;
  });
  let result = null;
  if (id || (merchant && order)) {
    try {
      const found = id
        ? await api('GET', `/admin/payments/${encodeURIComponent(id)}`)
        : await api('GET', `/admin/payments${query({ merchant_id: merchant, order_no: order })}`);
      result = paymentDetail(found);
    } catch (e) {
      if (e.handled) throw e;
      result = problemBox(e, 'Lookup failed');
    }
  }
  return el('div', { id: 'payments' },
    el('h1', {}, 'Payments'),
    el('section', { class: 'card' }, byId, byOrder),
    result);
}

function paymentDetail(found) {
  const p = found.payment;
  const metadata = Object.entries(p.metadata || {});
  const refunds = (p.refunds || []).map((rf) => el('tr', {},
    el('td', { class: 'mono' }, rf.id),
    el('td', { class: 'num' }, money(rf.amount, p.currency)),
    el('td', {}, status(rf.status)),
    el('td', {}, rf.reason || ''),
    el('td', {}, rf.operator_id || ''),
    el('td', {}, time(rf.created_at))));
  const deliveries = found.deliveries.map((d) => el('tr', {},
    el('td', {}, link(`#/delivery/${encodeURIComponent(d.id)}`, d.id)),
    el('td', {}, d.event_type),
    el('td', {}, d.channel),
    el('td', {}, status(d.status)),
    el('td', {}, time(d.updated_at))));
  return el('div', { id: 'payment' },
    el('h2', {}, 'Payment ', el('span', { class: 'mono', id: 'payment-id' }, p.id)),
    el('section', { class: 'card' }, fields([
      ['merchant', p.merchant_id],
      ['order number', el('span', { id: 'payment-order' }, p.order_no)],
      ['amount', el('span', { id: 'payment-amount' }, money(p.amount, p.currency))],
      ['status', status(p.status)],
      ['refunded', [money(p.amount_refunded, p.currency), ' ', status(p.refund_status)]],
      ['description', el('span', { id: 'payment-description' }, p.description || '')],
      ['customer e-mail', p.customer_email],
      ['payment method', p.payment_method],
      ['provider', `${p.provider}${p.provider_payment_id ? ` · ${p.provider_payment_id}` : ''}`],
      ['attempts', String(p.attempt_count)],
      p.failure_code ? ['failure', `${p.failure_code}: ${p.failure_message || ''}`] : null,
      metadata.length ? ['metadata', el('ul', {}, metadata.map(([k, v]) => el('li', {}, `${k} = ${v}`)))] : null,
      ['created', time(p.created_at)],
      ['updated', time(p.updated_at)],
    ])),
    el('h2', {}, 'Refunds'),
    table(['refund', 'amount', 'status', 'reason', 'operator', 'created'], refunds, { id: 'refunds' }),
    el('h2', {}, 'Events'),
    found.events_scan && !found.events_scan.complete
      ? el('p', { class: 'muted' }, `Searched the newest ${found.events_scan.max} events of the outbox only.`) : null,
    table(['seq', 'created', 'type', 'level', 'title', 'about', ''], eventRows(found.events), { id: 'payment-events' }),
    el('h2', {}, 'Deliveries'),
    table(['delivery', 'event', 'channel', 'status', 'updated'], deliveries, { id: 'payment-deliveries' }));
}

// ---------------------------------------------------------------------------------------
// Merchant webhook endpoints: read any merchant's, disable one.

function endpointsHash(params) {
  return `#/webhook_endpoints${query(params)}`;
}

async function webhookEndpointsView(r) {
  const filter = { merchant_id: r.params.get('merchant_id') || '', status: r.params.get('status') || '' };
  const after = r.params.get('after') || '';
  // A refused filter (an unknown merchant) is shown beside the form, which stays usable.
  let page = { data: [], has_more: false };
  let failure = null;
  try {
    page = await api('GET', `/admin/webhook_endpoints${query({ ...filter, limit: PAGE_SIZE, after })}`);
  } catch (e) {
    if (e.handled) throw e;
    failure = problemBox(e, 'Could not list the endpoints');
  }
  // Merchants to pick from: those with endpoints (one page of every merchant's).
  const everyone = filter.merchant_id || filter.status || after || failure
    ? await api('GET', `/admin/webhook_endpoints${query({ limit: 500 })}`)
    : page;
  const merchants = [...new Set(everyone.data.map((e) => e.merchant_id))].sort();
  const merchantInput = el('input', { type: 'text', id: 'endpoints-merchant', name: 'merchant_id', value: filter.merchant_id, list: 'endpoints-merchants', placeholder: 'every merchant', autocomplete: 'off' });
  const statusSelect = el('select', { id: 'endpoints-status', name: 'status' },
    el('option', { value: '' }, 'any status'),
    ['enabled', 'disabled'].map((s) => el('option', { value: s }, s)));
  statusSelect.value = filter.status;
  const filters = el('form', { class: 'filters', id: 'endpoint-filters' },
    el('label', { for: 'endpoints-merchant' }, 'Merchant id', merchantInput),
    el('datalist', { id: 'endpoints-merchants' }, merchants.map((m) => el('option', { value: m }))),
    el('label', { for: 'endpoints-status' }, 'Status', statusSelect),
    el('button', { type: 'submit' }, 'Show'));
  filters.addEventListener('submit', (event) => {
    event.preventDefault();
    location.hash = endpointsHash({ merchant_id: merchantInput.value.trim(), status: statusSelect.value });
  });
  return el('div', { id: 'webhook-endpoints' },
    el('h1', {}, 'Webhook endpoints'),
    el('p', { class: 'muted' }, 'Merchants\' own signed webhooks. Disabling one stops its deliveries at once, as if its merchant had disabled it; the merchant can enable it again.'),
    filters,
    failure,
    el('p', { id: 'endpoint-result', class: 'ok-note', role: 'status' }),
    failure ? null : page.data.length
      ? el('ul', { class: 'endpoints', id: 'endpoints' }, page.data.map(endpointCard))
      : el('p', { class: 'muted', id: 'endpoints' }, filter.merchant_id ? `Merchant ${filter.merchant_id} has no webhook endpoints${filter.status ? ` that are ${filter.status}` : ''}.` : 'No webhook endpoints.'),
    el('div', { class: 'pager' },
      after ? link(endpointsHash(filter), 'First page') : null,
      page.has_more ? link(endpointsHash({ ...filter, after: page.next_after }), 'Next page') : null,
      el('button', { type: 'button', class: 'secondary', onclick: rerender }, 'Refresh')));
}

function endpointCard(e) {
  const enabled = e.status === 'enabled';
  const headingId = `endpoint-${e.id}-title`;
  return el('li', { class: 'card endpoint', id: `endpoint-${e.id}`, 'data-id': e.id, 'aria-labelledby': headingId },
    el('h2', { id: headingId }, el('span', { class: 'mono' }, e.id), ' ', status(e.status)),
    fields([
      ['merchant', link(endpointsHash({ merchant_id: e.merchant_id }), e.merchant_id)],
      ['URL', el('span', { class: 'mono endpoint-url' }, e.url)],
      ['events', (e.enabled_events || []).join(', ')],
      ['description', el('span', { class: 'endpoint-description' }, e.description || '')],
      e.disabled_reason ? ['disabled because', el('span', { class: 'endpoint-reason' }, e.disabled_reason)] : null,
      ['failing since', e.failing_since ? time(e.failing_since) : 'not failing'],
      ['created', time(e.created_at)],
      ['updated', time(e.updated_at)],
    ]),
    enabled ? el('div', { class: 'actions' },
      el('button', { type: 'button', class: 'danger disable-endpoint', id: `disable-${e.id}`, onclick: (ev) => disableEndpoint(ev.currentTarget, e) }, 'Disable…'))
      : null);
}

async function disableEndpoint(button, e) {
  await act(button, `Disable ${e.id}`, async () => {
    const ok = await confirmDialog(`Disable webhook endpoint ${e.id} of merchant ${e.merchant_id} (${e.url})? paykeep stops sending it events at once.`, 'Disable endpoint');
    if (!ok) return;
    const done = await api('POST', `/admin/webhook_endpoints/${encodeURIComponent(e.id)}/disable`);
    await render();
    const result = document.getElementById('endpoint-result');
    if (result) result.textContent = `Disabled ${done.id} of merchant ${done.merchant_id}.`;
    const card = document.getElementById(`endpoint-${done.id}`);
    if (card) card.querySelector('h2').setAttribute('tabindex', '-1');
    if (card) card.querySelector('h2').focus();
  });
}

// ---------------------------------------------------------------------------------------

document.addEventListener('DOMContentLoaded', () => {
  document.getElementById('sign-out').addEventListener('click', () => {
    sessionStorage.removeItem(TOKEN_KEY);
    showSignIn();
  });
  window.addEventListener('hashchange', render);
  render();
});
