// The status page's script: polls /api/status, /api/v1/history and /api/v1/audit with the
// bearer token the operator gave, and keeps one card per rollout up to date. Every value
// shown is user input somewhere (flag keys, reasons, actors), so the DOM is built with
// textContent and createElementNS only; nothing is parsed as HTML.
/* global document, window, fetch, sessionStorage, URLSearchParams, performance, location, setTimeout, clearTimeout, Element */
'use strict';
(() => {
  const SVG = 'http://www.w3.org/2000/svg';
  const TOKEN_KEY = 'rollout-guardian.token';
  const ACTIONS = ['pause', 'resume', 'promote', 'abort', 'rollback', 'reset-state'];
  // A button says its action; reset-state's route name reads better as two words.
  const LABELS = { 'reset-state': 'reset state' };
  const CHARTS = [
    { key: 'errorRate', label: 'error rate', format: (v) => percent(v) },
    { key: 'p95Ms', label: 'P95', format: (v) => ms(v) },
    { key: 'p99Ms', label: 'P99', format: (v) => ms(v) },
  ];
  const CHART_W = 220;
  const CHART_H = 64;
  const AUDIT_SHOWN = 20;
  const params = new URLSearchParams(location.search);
  const pollMs = Math.min(60000, Math.max(100, Number(params.get('poll')) || 2000));

  const $ = (id) => document.getElementById(id);
  const main = $('flags');
  const cards = new Map();
  const history = new Map();
  let pointMs = 60000;
  let horizonMs = 3600000;
  let auditByFlag = new Map();
  let timer;
  let running;
  let rendered = false;
  let polls = 0;
  let auditDue = false;
  let lastSignature = '';

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function svg(tag, attributes) {
    const node = document.createElementNS(SVG, tag);
    for (const name of Object.keys(attributes)) node.setAttribute(name, String(attributes[name]));
    return node;
  }

  function percent(v) {
    return v === null || v === undefined ? '–' : `${(v * 100).toFixed(v < 0.001 && v > 0 ? 3 : 2)}%`;
  }

  function ms(v) {
    return v === null || v === undefined ? '–' : `${v < 10 ? v.toFixed(1) : Math.round(v)} ms`;
  }

  function count(v) {
    return v === null || v === undefined ? '–' : String(v);
  }

  // Kept for the tab's life; a copy in memory when storage is refused (private mode).
  let heldToken = '';
  function token() {
    try {
      return sessionStorage.getItem(TOKEN_KEY) || heldToken;
    } catch {
      return heldToken;
    }
  }

  function headers(bearer) {
    return bearer ? { authorization: `Bearer ${bearer}` } : {};
  }

  function errorMessage(body, response) {
    const error = body && body.error;
    if (typeof error === 'string') return error;
    if (error && typeof error.message === 'string') return error.message;
    return `${response.status} ${response.statusText}`;
  }

  async function getJson(path) {
    const response = await fetch(path, { headers: headers(token()), cache: 'no-store' });
    const body = await response.json().catch(() => null);
    if (!response.ok) {
      const error = new Error(errorMessage(body, response));
      error.status = response.status;
      throw error;
    }
    return body;
  }

  // ---- history: fetched whole once, then only the points after what the page holds ----

  function historyEnd(entry) {
    return entry.fromMs + entry.treatment.requests.length * pointMs;
  }

  function appendSeries(into, from) {
    for (const key of ['requests', 'errorRate', 'p95Ms', 'p99Ms']) for (const v of from[key]) into[key].push(v);
  }

  function trimHistory(entry, nowMs) {
    const drop = Math.max(0, Math.floor((nowMs - horizonMs - entry.fromMs) / pointMs));
    if (drop <= 0) return;
    for (const cohort of [entry.treatment, entry.baseline])
      for (const key of ['requests', 'errorRate', 'p95Ms', 'p99Ms']) cohort[key].splice(0, drop);
    entry.fromMs += drop * pointMs;
  }

  async function loadHistory() {
    let since;
    for (const entry of history.values()) since = since === undefined ? historyEnd(entry) : Math.max(since, historyEnd(entry));
    const view = await getJson(since === undefined ? '/api/v1/history' : `/api/v1/history?since=${since}`);
    pointMs = view.pointMs;
    horizonMs = view.horizonMs;
    const present = new Set();
    const refetch = [];
    for (const flag of view.flags) {
      present.add(flag.flag);
      const held = history.get(flag.flag);
      const fresh = flag.treatment.requests.length;
      if (held && (fresh === 0 || flag.fromMs === historyEnd(held))) {
        appendSeries(held.treatment, flag.treatment);
        appendSeries(held.baseline, flag.baseline);
      } else if (!held && since === undefined) {
        history.set(flag.flag, flag);
      } else {
        refetch.push(flag.flag);
      }
    }
    for (const key of [...history.keys()]) if (!present.has(key)) history.delete(key);
    for (const key of refetch) {
      const one = await getJson(`/api/v1/history?flag=${encodeURIComponent(key)}`);
      if (one.flags[0]) history.set(key, one.flags[0]);
      else history.delete(key);
    }
  }

  const AUDIT_LIMIT = 200;
  // A store's newest entries give every card its count; an open timeline reads its own flag's.
  const flagAudit = new Map();
  let auditTruncated = false;

  function entriesOf(body) {
    return Array.isArray(body) ? body : (body && body.entries) || [];
  }

  // The log lists oldest first; reversed before the (stable) sort, entries written in the same
  // millisecond (a reset right after a rollback) keep newest first.
  function newestFirst(entries) {
    return entries.reverse().sort((a, b) => (a.time < b.time ? 1 : a.time > b.time ? -1 : 0));
  }

  async function loadFlagAudit(flag) {
    const entries = entriesOf(await getJson(`/api/v1/audit?flag=${encodeURIComponent(flag)}&limit=${AUDIT_SHOWN}`));
    flagAudit.set(flag, newestFirst(entries));
  }

  async function loadAudit() {
    const entries = entriesOf(await getJson(`/api/v1/audit?limit=${AUDIT_LIMIT}`));
    auditTruncated = entries.length >= AUDIT_LIMIT;
    const open = [...cards].filter(([, refs]) => refs.audit.open).map(([flag]) => flag);
    await Promise.all(open.map(loadFlagAudit));
    const byFlag = new Map();
    for (const entry of entries) {
      let list = byFlag.get(entry.flagKey);
      if (!list) byFlag.set(entry.flagKey, (list = []));
      list.push(entry);
    }
    for (const list of byFlag.values()) newestFirst(list);
    auditByFlag = byFlag;
  }

  // ---- one card per rollout, built once and updated in place ----

  function cohortRow(label) {
    const row = el('tr');
    row.append(el('td', undefined, label), el('td'), el('td'), el('td'), el('td'));
    return row;
  }

  function makeChart(chart) {
    const figure = el('figure');
    figure.append(el('figcaption', undefined, chart.label));
    const box = svg('svg', { class: 'chart', width: CHART_W, height: CHART_H, viewBox: `0 0 ${CHART_W} ${CHART_H}`, role: 'img' });
    const title = svg('title', {});
    title.textContent = `${chart.label}, treatment and baseline, the last hour`;
    box.append(
      title,
      svg('line', { class: 'limit', x1: 0, x2: CHART_W, y1: -1, y2: -1 }),
      svg('path', { class: 'b', d: '' }),
      svg('path', { class: 't', d: '' }),
      svg('text', { class: 'max', x: 3, y: 10 }),
    );
    figure.append(box);
    return figure;
  }

  // One card is built element by element once; every other card is a deep clone of it, which
  // is several times faster for a page of 200.
  let prototype;
  function cardPrototype() {
    if (prototype) return prototype;
    const card = el('section', 'flag');
    const head = el('header');
    head.append(el('h2'), el('span', 'badge pct'), el('span', 'badge'), el('span', 'badge'));
    const table = el('table', 'numbers');
    const headRow = el('tr');
    for (const h of ['cohort', 'requests', 'error rate', 'P95', 'P99']) headRow.append(el('th', undefined, h));
    table.append(headRow, cohortRow('treatment'), cohortRow('baseline'));
    const charts = el('div', 'charts');
    for (const chart of CHARTS) charts.append(makeChart(chart));
    const body = el('div', 'body');
    body.append(table, charts);
    const actions = el('div', 'actions');
    for (const action of ACTIONS) {
      const button = el('button', action === 'rollback' || action === 'abort' ? 'danger' : undefined, LABELS[action] || action);
      button.type = 'button';
      button.dataset.action = action;
      actions.append(button);
    }
    const audit = el('details', 'audit');
    audit.append(el('summary', undefined, 'Audit timeline'), el('ol'));
    card.append(head, el('p', 'plan'), el('p', 'reason'), body, actions, audit);
    prototype = card;
    return card;
  }

  function makeCard(flag) {
    const card = cardPrototype().cloneNode(true);
    card.dataset.flag = flag;
    const badges = card.querySelectorAll('header .badge');
    card.querySelector('h2').textContent = flag;
    const rows = card.querySelectorAll('table.numbers tr');
    const row = (tr) => ({ name: tr.firstChild, cells: [...tr.children].slice(1) });
    const drawn = [...card.querySelectorAll('svg.chart')].map((box, i) => ({
      baseline: box.querySelector('.b'),
      treatment: box.querySelector('.t'),
      max: box.querySelector('.max'),
      limit: box.querySelector('.limit'),
      chart: CHARTS[i],
    }));
    const buttons = {};
    for (const button of card.querySelectorAll('.actions button')) buttons[button.dataset.action] = button;
    const audit = card.querySelector('details.audit');
    return {
      card,
      pct: badges[0],
      verdict: badges[1],
      extra: badges[2],
      plan: card.querySelector('.plan'),
      reason: card.querySelector('.reason'),
      treatment: row(rows[1]),
      baseline: row(rows[2]),
      drawn,
      buttons,
      audit,
      auditSummary: audit.querySelector('summary'),
      auditList: audit.querySelector('ol'),
      auditKey: '',
      auditBuilt: null,
    };
  }

  function fillCohort(row, label, view) {
    row.name.textContent = label;
    const values = view ? [count(view.samples), percent(view.errorRate), ms(view.p95Ms), ms(view.p99Ms)] : ['–', '–', '–', '–'];
    for (let i = 0; i < 4; i++) row.cells[i].textContent = values[i];
  }

  function planText(plan) {
    if (!plan) return 'no plan';
    let text = `${plan.strategy} plan ${plan.status}: step ${plan.step} of ${plan.steps} (${plan.stepPercentage}%)`;
    if (plan.nextPercentage !== null)
      text += plan.nextStepAt ? `; next ${plan.nextPercentage}% at ${plan.nextStepAt} if healthy` : `; next ${plan.nextPercentage}%`;
    if (plan.note) text += ` (${plan.note})`;
    return text;
  }

  function updateCard(refs, view) {
    refs.pct.textContent = `${view.percentage}% ${view.treatmentVariant ?? ''}`.trim();
    const verdict = view.rolledBack ? 'rolled back' : view.guardian ? view.guardian.verdict : 'not judged';
    refs.verdict.textContent = verdict;
    refs.verdict.className = `badge v-${verdict.replace(' ', '-')}`;
    const extras = [];
    if (view.override !== null) extras.push(`override: ${view.override}`);
    if (view.disabled) extras.push('disabled');
    if (view.plan && view.plan.status === 'paused') extras.push('paused');
    refs.extra.textContent = extras.join(', ');
    refs.extra.hidden = extras.length === 0;
    refs.plan.textContent = planText(view.plan);
    refs.reason.textContent = view.guardian
      ? `guardian: ${view.guardian.reason}`
      : view.rolledBack
        ? 'rolled back; the baseline serves everyone'
        : 'the guardian has not judged this rollout';
    fillCohort(refs.treatment, `treatment (${view.treatmentVariant ?? '–'})`, view.guardian && view.guardian.treatment);
    fillCohort(refs.baseline, `baseline (${view.baselineVariant})`, view.guardian && view.guardian.baseline);
    const live = view.plan && (view.plan.status === 'running' || view.plan.status === 'paused');
    refs.buttons.pause.disabled = !(view.plan && view.plan.status === 'running');
    refs.buttons.resume.disabled = !(view.plan && view.plan.status === 'paused');
    refs.buttons.promote.disabled = !live;
    refs.buttons.abort.disabled = !live;
    refs.buttons.rollback.disabled = view.rolledBack;
    // Only a rolled-back flag offers it: clearing its state lets the flag file decide again.
    refs.buttons['reset-state'].hidden = !view.rolledBack;
  }

  function linePath(values, firstMs, max, fromMs, nowMs) {
    let d = '';
    let pen = false;
    const span = Math.max(1, nowMs - fromMs);
    for (let i = 0; i < values.length; i++) {
      const v = values[i];
      if (v === null || v === undefined) {
        pen = false;
        continue;
      }
      const t = firstMs + (i + 0.5) * pointMs;
      const x = ((t - fromMs) / span) * CHART_W;
      const y = CHART_H - 2 - (v / max) * (CHART_H - 14);
      d += `${pen ? 'L' : 'M'}${x.toFixed(1)} ${y.toFixed(1)}`;
      pen = true;
    }
    return d;
  }

  function drawCharts(refs, flag, nowMs) {
    const entry = history.get(flag);
    for (const chart of refs.drawn) {
      if (!entry) {
        chart.treatment.setAttribute('d', '');
        chart.baseline.setAttribute('d', '');
        chart.limit.setAttribute('visibility', 'hidden');
        chart.max.textContent = 'no data yet';
        continue;
      }
      const t = entry.treatment[chart.chart.key];
      const b = entry.baseline[chart.chart.key];
      let max = 0;
      for (const v of t) if (v !== null && v > max) max = v;
      for (const v of b) if (v !== null && v > max) max = v;
      // The guard's limit is drawn too, so the distance to it shows: the scale reaches it.
      const limit = entry.limits ? entry.limits[chart.chart.key] : undefined;
      const top = Math.max(max, typeof limit === 'number' ? limit : 0) * 1.1 || 1;
      if (typeof limit === 'number') {
        const y = (CHART_H - 2 - (limit / top) * (CHART_H - 14)).toFixed(1);
        chart.limit.setAttribute('y1', y);
        chart.limit.setAttribute('y2', y);
        chart.limit.setAttribute('visibility', 'visible');
      } else chart.limit.setAttribute('visibility', 'hidden');
      const fromMs = nowMs - horizonMs;
      chart.treatment.setAttribute('d', linePath(t, entry.fromMs, top, fromMs, nowMs));
      chart.baseline.setAttribute('d', linePath(b, entry.fromMs, top, fromMs, nowMs));
      const limitText = typeof limit === 'number' ? `; limit ${chart.chart.format(limit)}` : '';
      chart.max.textContent =
        max > 0 ? `max ${chart.chart.format(max)}${limitText}` : t.length === 0 ? 'no data yet' : `no traffic${limitText}`;
    }
  }

  function stateChange(entry) {
    const before = entry.before && entry.before.state;
    const after = entry.after && entry.after.state;
    const pct = (s) => (s && typeof s.percentage === 'number' ? `${s.percentage}%` : undefined);
    const status = (s) => (s && s.plan ? s.plan.status : undefined);
    const parts = [];
    if (pct(before) !== pct(after)) parts.push(`percentage ${pct(before) ?? 'as defined'} → ${pct(after) ?? 'as defined'}`);
    if (status(before) !== status(after)) parts.push(`plan ${status(before) ?? 'none'} → ${status(after) ?? 'none'}`);
    if (after && after.rollback && !(before && before.rollback)) parts.push('rolled back');
    return parts.join('; ');
  }

  function auditKey(entries) {
    return entries.length === 0 ? '' : `${entries.length}:${entries[0].revision}:${entries[0].time}`;
  }

  function updateAudit(refs, flag) {
    const recent = auditByFlag.get(flag) || [];
    const summary = `Audit timeline (${recent.length}${auditTruncated ? '+' : ''})`;
    if (summary !== refs.auditKey) {
      refs.auditKey = summary;
      refs.auditSummary.textContent = summary;
    }
    // The entries are built when the timeline is open: most cards' timelines stay closed.
    if (!refs.audit.open) return;
    const entries = (flagAudit.get(flag) || recent).slice(0, AUDIT_SHOWN);
    const key = auditKey(entries);
    if (refs.auditBuilt !== key) {
      refs.auditBuilt = key;
      refs.auditList.replaceChildren(...entries.map(auditItem));
    }
  }

  function auditItem(entry) {
    const item = el('li', entry.action === 'rollback' ? 'rollback' : undefined);
    const line = el('div');
    line.append(el('strong', undefined, entry.action), ` by ${entry.actor} at ${entry.time}: `, el('q', undefined, entry.reason));
    item.append(line);
    const change = stateChange(entry);
    if (change) item.append(el('div', 'muted', change));
    if (entry.evidence) {
      const details = el('details');
      details.append(el('summary', undefined, 'evidence'), el('pre', undefined, JSON.stringify(entry.evidence, null, 2)));
      item.append(details);
    }
    return item;
  }

  function render(status) {
    const nowMs = Date.parse(status.generatedAt);
    $('source').textContent = status.store;
    $('updated').textContent =
      `updated ${status.generatedAt}${status.guardianLastTick ? `; guardian ticked ${status.guardianLastTick}` : ''}`;
    document.body.dataset.generatedAt = status.generatedAt;
    const seen = new Set();
    let previous = null;
    for (const view of status.flags) {
      seen.add(view.flag);
      let refs = cards.get(view.flag);
      if (!refs) {
        refs = makeCard(view.flag);
        cards.set(view.flag, refs);
      }
      updateCard(refs, view);
      const entry = history.get(view.flag);
      if (entry) trimHistory(entry, nowMs);
      drawCharts(refs, view.flag, nowMs);
      updateAudit(refs, view.flag);
      const expected = previous ? previous.nextSibling : main.firstChild;
      if (expected !== refs.card) main.insertBefore(refs.card, expected);
      previous = refs.card;
    }
    for (const [flag, refs] of cards) {
      if (seen.has(flag)) continue;
      refs.card.remove();
      cards.delete(flag);
    }
    $('empty').hidden = status.flags.length > 0;
  }

  function showProblem(text) {
    const problem = $('problem');
    problem.textContent = text || '';
    problem.hidden = !text;
  }

  async function refresh() {
    try {
      // The audit log is the largest answer: read it at first, after an action, when a flag's
      // state moved, and every 15th poll (audit entries of other writers land with a state change too).
      const wantAudit = !rendered || auditDue || polls % 15 === 0;
      auditDue = false;
      polls++;
      const [status] = await Promise.all([getJson('/api/status'), loadHistory(), wantAudit ? loadAudit() : null]);
      const signature = JSON.stringify(
        status.flags.map((f) => [
          f.flag,
          f.percentage,
          f.rolledBack,
          f.override,
          f.disabled,
          f.plan && f.plan.status,
          f.plan && f.plan.step,
        ]),
      );
      if (!wantAudit && signature !== lastSignature) await loadAudit();
      lastSignature = signature;
      if (!rendered) {
        document.documentElement.dataset.dataMs = String(Math.round(performance.now()));
        performance.mark('status-page:render-start');
      }
      render(status);
      showProblem(status.storeTrouble ? `store unavailable: ${status.storeTrouble}` : '');
      if (!rendered) {
        rendered = true;
        // What the benchmark reads: from navigation to the first frame painted with every rollout
        // (style, layout and paint included: the timeout runs after the frame), and that render's share.
        window.requestAnimationFrame(() =>
          setTimeout(() => {
            performance.mark('status-page:render-end');
            const measure = performance.measure('status-page:render', 'status-page:render-start', 'status-page:render-end');
            document.documentElement.dataset.renderMs = String(Math.round(measure.duration));
            document.documentElement.dataset.firstRenderMs = String(Math.round(performance.now()));
          }, 0),
        );
      }
    } catch (err) {
      const status = err && err.status;
      showProblem(
        status === 401 || status === 403
          ? `${err.message}: enter a token with the read role above`
          : `cannot reach the server: ${err && err.message}`,
      );
    }
  }

  function poll() {
    clearTimeout(timer);
    running = (running || Promise.resolve()).then(refresh).finally(() => {
      // One timer at a time, however many refreshes were asked for meanwhile.
      clearTimeout(timer);
      timer = setTimeout(poll, pollMs);
    });
  }

  // ---- actions: ask for a token and a reason, show what the server answers ----

  const dialog = $('action-dialog');
  let pending = null;

  function openAction(flag, action) {
    pending = { flag, action };
    $('action-title').textContent = `${action} ${flag}`;
    $('action-token').value = token();
    $('action-reason').value = '';
    $('action-message').textContent = '';
    dialog.showModal();
    $('action-reason').focus();
  }

  async function confirmAction() {
    if (!pending) return;
    const { flag, action } = pending;
    const reason = $('action-reason').value.trim();
    const message = $('action-message');
    if (!reason) {
      message.textContent = 'say why, for the audit log';
      return;
    }
    message.textContent = 'sending…';
    try {
      const response = await fetch(`/api/v1/flags/${encodeURIComponent(flag)}/${action}`, {
        method: 'POST',
        headers: Object.assign({ 'content-type': 'application/json' }, headers($('action-token').value.trim())),
        body: JSON.stringify({ reason }),
      });
      const body = await response.json().catch(() => null);
      if (!response.ok || !body || body.ok !== true) {
        message.textContent = errorMessage(body, response);
        return;
      }
      pending = null;
      dialog.close();
      auditDue = true;
      poll();
    } catch (err) {
      message.textContent = `cannot reach the server: ${err && err.message}`;
    }
  }

  // One listener for every card's buttons, and one for every timeline opened.
  main.addEventListener('click', (event) => {
    const button = event.target instanceof Element ? event.target.closest('button[data-action]') : null;
    const card = button && button.closest('section.flag');
    if (card) openAction(card.dataset.flag, button.dataset.action);
  });
  main.addEventListener(
    'toggle',
    (event) => {
      const card = event.target instanceof Element && event.target.matches('details.audit') ? event.target.closest('section.flag') : null;
      const flag = card && card.dataset.flag;
      const refs = card && cards.get(flag);
      if (!refs) return;
      updateAudit(refs, flag);
      if (refs.audit.open) {
        loadFlagAudit(flag).then(
          () => updateAudit(refs, flag),
          (err) => showProblem(`cannot read the audit log of ${flag}: ${err.message}`),
        );
      }
    },
    true,
  );

  $('action-form').addEventListener('submit', (event) => {
    event.preventDefault();
    void confirmAction();
  });
  $('action-cancel').addEventListener('click', () => {
    pending = null;
    dialog.close();
  });
  $('token-form').addEventListener('submit', (event) => {
    event.preventDefault();
    heldToken = $('token').value.trim();
    try {
      sessionStorage.setItem(TOKEN_KEY, heldToken);
    } catch {
      // Storage refused: heldToken serves for this page's life.
    }
    $('token').value = '';
    history.clear();
    poll();
  });

  poll();
  // A page restored from the back-forward cache starts polling again.
  window.addEventListener('pageshow', (event) => {
    if (event.persisted) poll();
  });
})();
