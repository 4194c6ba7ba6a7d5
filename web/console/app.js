// The Tokens console: sign-in with a user access token, the token table
// (search, pagination, enable switch, copy, edit, delete, batch actions) and
// the create/edit dialogs. Everything is built with DOM calls (textContent,
// never innerHTML), so a token's name cannot inject markup; the page runs
// under a CSP without inline scripts or styles.

import * as api from './api.js';
import { apply, lang, locale, setLang, t } from './i18n.js';
import { invalidIPEntries, ipEntries } from './ip.js';

const $ = (sel) => document.querySelector(sel);

const state = {
  page: 1,
  size: 20,
  total: 0,
  items: [],
  searching: false,
  selected: new Set(),
  editing: null, // the token being edited, or null when creating
  models: [],
};

// ---- small helpers ----

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k in e && typeof v !== 'string') e[k] = v;
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c !== null && c !== undefined) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function showError(node, err) {
  node.textContent = err ? err.message || String(err) : '';
  node.hidden = !err;
}

let toastTimer = 0;
function toast(msg) {
  const n = $('#toast');
  n.textContent = msg;
  n.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => {
    n.hidden = true;
  }, 3000);
}

const now = () => Math.floor(Date.now() / 1000);

function absTime(sec) {
  return new Intl.DateTimeFormat(locale(), { dateStyle: 'medium', timeStyle: 'short' }).format(new Date(sec * 1000));
}

function relTime(sec) {
  const diff = sec - now();
  const abs = Math.abs(diff);
  const rtf = new Intl.RelativeTimeFormat(locale(), { numeric: 'auto' });
  const units = [
    ['year', 365 * 86400],
    ['month', 30 * 86400],
    ['day', 86400],
    ['hour', 3600],
    ['minute', 60],
  ];
  for (const [unit, s] of units) {
    if (abs >= s) return rtf.format(Math.round(diff / s), unit);
  }
  return rtf.format(diff, 'second');
}

// A cell with a relative time over the absolute one.
function timeCell(sec, emptyText) {
  if (!sec || sec <= 0) return el('span', { class: 'muted', text: emptyText });
  const iso = new Date(sec * 1000).toISOString();
  return el('span', { class: 'when' },
    el('time', { datetime: iso, title: absTime(sec), text: relTime(sec) }),
    el('small', { text: absTime(sec) }));
}

function quota(n) {
  return new Intl.NumberFormat(locale()).format(n || 0);
}

async function writeClipboard(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    return false;
  }
}

// ---- dialogs ----

let lastFocus = null;
function openDialog(d, focus) {
  lastFocus = document.activeElement;
  d.showModal();
  if (focus) focus.focus();
}

function closeDialog(d) {
  if (d.open) d.close();
}

// Every dialog returns focus to what opened it; [data-close] buttons close it.
for (const d of document.querySelectorAll('dialog')) {
  d.addEventListener('close', () => {
    if (lastFocus && document.contains(lastFocus)) lastFocus.focus();
  });
  for (const b of d.querySelectorAll('[data-close]')) b.addEventListener('click', () => closeDialog(d));
}

function confirmDialog(text) {
  const d = $('#confirm-dialog');
  $('#confirm-text').textContent = text;
  return new Promise((resolve) => {
    const ok = $('#confirm-ok');
    const done = (v) => {
      ok.removeEventListener('click', onOK);
      d.removeEventListener('close', onClose);
      resolve(v);
    };
    const onOK = () => {
      done(true);
      closeDialog(d);
    };
    const onClose = () => done(false);
    ok.addEventListener('click', onOK);
    d.addEventListener('close', onClose);
    openDialog(d, d.querySelector('[data-close]'));
  });
}

// showKeys lists full keys ([{name, key}]) with copy buttons.
function showKeys(entries, { title = t('keys_title'), hint = t('keys_hint') } = {}) {
  const list = $('#keys-list');
  list.replaceChildren(...entries.map(({ name, key }) =>
    el('li', {},
      el('span', { class: 'key-name', text: name }),
      el('code', { class: 'full-key', text: key }),
      el('button', {
        type: 'button',
        class: 'small',
        'aria-label': t('copy_key_of', { name }),
        text: t('copy'),
        onclick: async () => toast((await writeClipboard(key)) ? t('copied') : t('copy_failed')),
      }))));
  $('#keys-dialog-title').textContent = title;
  $('#keys-hint').textContent = hint;
  const copyAll = $('#keys-copy-all');
  copyAll.hidden = entries.length < 2;
  copyAll.onclick = async () => toast((await writeClipboard(entries.map((e) => e.key).join('\n')))
    ? t('copied_n', { n: entries.length }) : t('copy_failed'));
  const d = $('#keys-dialog');
  openDialog(d, list.querySelector('button'));
}

// ---- views ----

function signedIn() {
  return api.accessToken() !== '';
}

function showView() {
  const on = signedIn();
  $('#signin-view').hidden = on;
  $('#tokens-view').hidden = !on;
  $('#sign-out').hidden = !on;
  if (!on) $('#access-token').focus();
}

function signOut(message) {
  api.setAccessToken('');
  state.items = [];
  state.selected.clear();
  $('#token-rows').replaceChildren();
  showView();
  showError($('#signin-error'), message ? { message } : null);
}

// handle shows err in node, or signs out when the access token was refused.
function handle(err, node = $('#page-error')) {
  if (err instanceof api.ApiError && err.auth) {
    signOut(err.message);
    return;
  }
  showError(node, err);
}

$('#signin-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const tok = $('#access-token').value.trim();
  if (!tok) {
    showError($('#signin-error'), { message: t('sign_in_empty') });
    return;
  }
  try {
    // Check the token before keeping it.
    await api.listTokens(1, 1, tok);
  } catch (err) {
    showError($('#signin-error'), err);
    return;
  }
  api.setAccessToken(tok);
  $('#access-token').value = '';
  showError($('#signin-error'), null);
  showView();
  await load();
  $('#create-button').focus();
});

$('#sign-out').addEventListener('click', () => signOut());

$('#lang-switch').addEventListener('click', () => {
  setLang(lang === 'zh' ? 'en' : 'zh');
  translate();
  render();
});

function translate() {
  apply();
  const sw = $('#lang-switch');
  sw.textContent = lang === 'zh' ? 'English' : '中文';
  sw.lang = lang === 'zh' ? 'en' : 'zh-CN';
  document.title = t('title');
}

// ---- the table ----

async function load() {
  showError($('#page-error'), null);
  const keyword = $('#search-name').value.trim();
  const key = $('#search-key').value.trim();
  try {
    if (keyword || key) {
      state.items = await api.searchTokens(keyword, key);
      state.total = state.items.length;
      state.searching = true;
    } else {
      const data = await api.listTokens(state.page, state.size);
      state.searching = false;
      state.total = data.total;
      state.items = data.items || [];
      const pages = Math.max(1, Math.ceil(state.total / state.size));
      if (state.items.length === 0 && state.page > pages) {
        state.page = pages;
        return load();
      }
    }
  } catch (err) {
    handle(err);
    return;
  }
  const ids = new Set(state.items.map((x) => x.id));
  for (const id of state.selected) if (!ids.has(id)) state.selected.delete(id);
  render();
}

// The periods of spend windows, shortest first, as the API names them.
const PERIODS = ['minute', 'hour', 'day', 'week', 'month'];

// windows shows each spend window of tok (budget_usage, as of the read):
// used / limit as a bar, and when the window resets.
function windows(tok) {
  const usage = tok.budget_usage || {};
  const shown = PERIODS.filter((p) => usage[p]);
  if (!shown.length) return el('span', { class: 'muted', text: t('no_windows') });
  return el('div', { class: 'windows' }, shown.map((p) => {
    const { limit, used, resets_at: resets } = usage[p];
    const period = t(`period_${p}`);
    return el('div', { class: 'window', 'data-period': p },
      el('span', { class: 'window-label', text: period }),
      el('meter', {
        min: 0,
        max: limit,
        value: Math.min(used, limit),
        low: limit * 0.8,
        high: limit * 0.95,
        optimum: 0,
        'aria-label': t('window_of', { period, used: quota(used), limit: quota(limit) }),
      }),
      el('span', { class: 'window-used', text: `${quota(used)} / ${quota(limit)}` }),
      el('small', { class: 'window-reset muted' }, el('time', {
        datetime: new Date(resets * 1000).toISOString(),
        title: absTime(resets),
        text: t('window_resets', { when: relTime(resets) }),
      })));
  }));
}

function statusBadge(s) {
  const kind = { 1: 'enabled', 2: 'disabled', 3: 'expired', 4: 'exhausted' }[s] || 'disabled';
  return el('span', { class: `badge ${kind}`, 'data-status': kind, text: t(`status_${s}`) });
}

function cell(label, ...children) {
  return el('td', { 'data-label': label }, ...children);
}

function row(tok) {
  const checked = state.selected.has(tok.id);
  const expires = tok.expired_time === -1
    ? el('span', { class: 'muted', text: t('never_expires') })
    : timeCell(tok.expired_time, t('never_expires'));
  const enabled = tok.status === 1;
  return el('tr', { 'data-id': String(tok.id), class: checked ? 'selected' : '' },
    el('td', { class: 'col-select' }, el('input', {
      type: 'checkbox',
      class: 'row-select',
      checked,
      'aria-label': t('select_row', { name: tok.name }),
      onchange: (ev) => {
        if (ev.target.checked) state.selected.add(tok.id);
        else state.selected.delete(tok.id);
        ev.target.closest('tr').classList.toggle('selected', ev.target.checked);
        renderSelection();
      },
    })),
    cell(t('col_name'), el('span', { class: 'token-name', text: tok.name }),
      tok.group ? el('small', { class: 'muted', text: ` · ${tok.group}` }) : null),
    cell(t('col_status'), statusBadge(tok.status)),
    cell(t('col_key'), el('span', { class: 'key' },
      el('code', { class: 'masked-key', text: tok.key }),
      el('button', {
        type: 'button',
        class: 'small copy-key',
        'aria-label': t('copy_key_of', { name: tok.name }),
        text: t('copy'),
        onclick: () => copyKey(tok),
      }))),
    cell(t('col_remain'), tok.unlimited_quota ? el('span', { class: 'unlimited', text: t('unlimited') }) : quota(tok.remain_quota)),
    cell(t('col_used'), quota(tok.used_quota)),
    cell(t('col_windows'), windows(tok)),
    cell(t('col_expiry'), expires),
    cell(t('col_created'), timeCell(tok.created_time, '-')),
    cell(t('col_accessed'), timeCell(tok.accessed_time, t('never_used'))),
    cell(t('col_enabled'), el('button', {
      type: 'button',
      role: 'switch',
      class: 'switch',
      'aria-checked': enabled ? 'true' : 'false',
      'aria-label': t('enable_of', { name: tok.name }),
      onclick: (ev) => toggle(tok, ev.currentTarget),
    }, el('span', { class: 'knob', 'aria-hidden': 'true' }))),
    cell(t('col_actions'), el('span', { class: 'row-actions' },
      el('button', { type: 'button', class: 'small edit', 'aria-label': t('edit_of', { name: tok.name }), text: t('edit'), onclick: () => openForm(tok) }),
      el('button', { type: 'button', class: 'small danger delete', 'aria-label': t('delete_of', { name: tok.name }), text: t('delete'), onclick: () => removeOne(tok) }))));
}

function render() {
  $('#token-rows').replaceChildren(...state.items.map(row));
  const empty = $('#empty');
  empty.hidden = state.items.length > 0;
  empty.textContent = state.searching ? t('no_results') : t('empty');
  const pages = Math.max(1, Math.ceil(state.total / state.size));
  $('#prev-page').disabled = state.searching || state.page <= 1;
  $('#next-page').disabled = state.searching || state.page >= pages;
  $('#page-size').disabled = state.searching;
  $('#page-info').textContent = state.searching
    ? t('search_info', { n: state.items.length })
    : t('page_info', { page: state.page, pages, total: state.total });
  renderSelection();
}

function renderSelection() {
  const n = state.selected.size;
  $('#batch-delete').disabled = n === 0;
  $('#batch-copy').disabled = n === 0;
  $('#selection-count').textContent = n ? t('selected', { n }) : '';
  const all = $('#select-all');
  all.checked = state.items.length > 0 && state.items.every((x) => state.selected.has(x.id));
  all.indeterminate = !all.checked && state.items.some((x) => state.selected.has(x.id));
}

$('#select-all').addEventListener('change', (ev) => {
  for (const x of state.items) {
    if (ev.target.checked) state.selected.add(x.id);
    else state.selected.delete(x.id);
  }
  render();
});

$('#search-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  state.page = 1;
  load();
});

$('#search-reset').addEventListener('click', () => {
  $('#search-name').value = '';
  $('#search-key').value = '';
  state.page = 1;
  load();
});

$('#prev-page').addEventListener('click', () => {
  state.page = Math.max(1, state.page - 1);
  load();
});

$('#next-page').addEventListener('click', () => {
  state.page += 1;
  load();
});

$('#page-size').addEventListener('change', (ev) => {
  state.size = Number(ev.target.value) || 20;
  state.page = 1;
  load();
});

// ---- row actions ----

async function copyKey(tok) {
  showError($('#page-error'), null);
  let key;
  try {
    key = await api.revealKey(tok.id);
  } catch (err) {
    handle(err);
    return;
  }
  if (await writeClipboard(key)) toast(t('copied'));
  else showKeys([{ name: tok.name, key }], { title: t('key_title'), hint: t('key_hint') });
}

async function toggle(tok, button) {
  showError($('#page-error'), null);
  button.disabled = true;
  try {
    const updated = await api.setStatus(tok.id, tok.status === 1 ? 2 : 1);
    Object.assign(tok, updated);
    const tr = button.closest('tr');
    const fresh = row(tok);
    tr.replaceWith(fresh);
    fresh.querySelector('.switch').focus();
  } catch (err) {
    button.disabled = false;
    handle(err);
  }
}

async function removeOne(tok) {
  if (!(await confirmDialog(t('confirm_delete', { name: tok.name })))) return;
  try {
    await api.deleteToken(tok.id);
    state.selected.delete(tok.id);
    toast(t('deleted'));
  } catch (err) {
    handle(err);
  }
  await load();
  $('#create-button').focus();
}

$('#batch-delete').addEventListener('click', async () => {
  const ids = [...state.selected];
  if (!ids.length || !(await confirmDialog(t('confirm_batch_delete', { n: ids.length })))) return;
  try {
    const n = await api.deleteTokens(ids);
    state.selected.clear();
    toast(t('deleted_n', { n }));
  } catch (err) {
    handle(err);
  }
  await load();
  $('#create-button').focus();
});

$('#batch-copy').addEventListener('click', async () => {
  showError($('#page-error'), null);
  // Keys in the table's order.
  const chosen = state.items.filter((x) => state.selected.has(x.id));
  let keys;
  try {
    keys = await api.revealKeys(chosen.map((x) => x.id));
  } catch (err) {
    handle(err);
    return;
  }
  const entries = chosen.filter((x) => keys[String(x.id)]).map((x) => ({ name: x.name, key: keys[String(x.id)] }));
  if (await writeClipboard(entries.map((e) => e.key).join('\n'))) toast(t('copied_n', { n: entries.length }));
  else showKeys(entries, { title: t('key_title'), hint: t('key_hint') });
});

// ---- create and edit ----

const form = $('#token-form');

function renderModels() {
  $('#f-model-tags').replaceChildren(...state.models.map((m) =>
    el('span', { class: 'tag', role: 'listitem' },
      el('span', { text: m }),
      el('button', {
        type: 'button',
        class: 'tag-remove',
        'aria-label': t('remove_model', { model: m }),
        text: '×',
        onclick: () => {
          state.models = state.models.filter((x) => x !== m);
          renderModels();
          $('#f-model-input').focus();
        },
      }))));
}

function addModels(text) {
  for (const m of text.split(',').map((s) => s.trim()).filter(Boolean)) {
    if (!state.models.includes(m)) state.models.push(m);
  }
  if (state.models.length) $('#f-models-enabled').checked = true;
  renderModels();
}

$('#f-model-input').addEventListener('keydown', (ev) => {
  const input = ev.currentTarget;
  if (ev.key === 'Enter' || ev.key === ',') {
    ev.preventDefault(); // Enter here adds a tag, it does not submit
    addModels(input.value);
    input.value = '';
  } else if (ev.key === 'Backspace' && input.value === '' && state.models.length) {
    state.models.pop();
    renderModels();
  }
});
$('#f-model-input').addEventListener('blur', (ev) => {
  if (ev.target.value.trim()) {
    addModels(ev.target.value);
    ev.target.value = '';
  }
});

function checkIPs() {
  const bad = invalidIPEntries($('#f-ips').value);
  const field = $('#f-ips');
  field.setAttribute('aria-invalid', bad.length ? 'true' : 'false');
  showError($('#f-ips-error'), bad.length ? { message: t('ips_invalid', { list: bad.join(', ') }) } : null);
  $('#token-submit').disabled = bad.length > 0;
  return bad.length === 0;
}
$('#f-ips').addEventListener('input', checkIPs);

for (const r of form.querySelectorAll('input[name=expiry]')) {
  r.addEventListener('change', () => {
    const custom = form.querySelector('input[name=expiry]:checked').value === 'custom';
    $('#f-expiry-date').disabled = !custom;
    if (custom) $('#f-expiry-date').focus();
  });
}

$('#f-unlimited').addEventListener('change', (ev) => {
  $('#f-quota').disabled = ev.target.checked;
});

function localDateTimeValue(sec) {
  const d = new Date(sec * 1000);
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

function openForm(tok) {
  state.editing = tok || null;
  form.reset();
  showError($('#token-form-error'), null);
  $('#token-dialog-title').textContent = tok ? t('edit_title') : t('create_title');
  $('#f-count-wrap').hidden = !!tok;
  $('#f-expiry-keep-label').hidden = !tok;
  $('#f-expiry-date').disabled = true;
  state.models = [];
  if (tok) {
    $('#f-name').value = tok.name;
    if (tok.expired_time === -1) form.querySelector('input[name=expiry][value=never]').checked = true;
    else {
      // Unchanged by default: an expired token stays editable.
      form.querySelector('input[name=expiry][value=keep]').checked = true;
      $('#f-expiry-date').value = localDateTimeValue(tok.expired_time);
    }
    $('#f-unlimited').checked = tok.unlimited_quota;
    $('#f-quota').value = String(tok.remain_quota);
    $('#f-models-enabled').checked = tok.model_limits_enabled;
    state.models = (tok.model_limits || '').split(',').map((s) => s.trim()).filter(Boolean);
    $('#f-ips').value = ipEntries(tok.allow_ips || '').join('\n');
    $('#f-group').value = tok.group || '';
    $('#f-rpm').value = String(tok.rpm_limit || 0);
    for (const input of budgetInputs()) {
      const limit = (tok.budgets || {})[input.dataset.period];
      input.value = limit ? String(limit) : '';
    }
    $('#f-budget-tz').value = tok.budget_timezone || '';
  }
  $('#f-quota').disabled = $('#f-unlimited').checked;
  renderModels();
  checkIPs();
  openDialog($('#token-dialog'), $('#f-name'));
}

$('#create-button').addEventListener('click', () => openForm(null));

// expiry returns the expired_time the form asks for, undefined to leave it
// unchanged, or throws when a custom date is missing.
function expiry() {
  const choice = form.querySelector('input[name=expiry]:checked').value;
  const n = now();
  switch (choice) {
    case 'never': return -1;
    case 'hour': return n + 3600;
    case 'day': return n + 86400;
    case 'month': return n + 30 * 86400;
    case 'keep': return undefined;
    default: {
      const v = $('#f-expiry-date').value;
      const ms = v ? new Date(v).getTime() : NaN;
      if (Number.isNaN(ms)) throw new Error(t('exp_custom_missing'));
      return Math.floor(ms / 1000);
    }
  }
}

// The API validates every number; the form passes what was typed.
const int = (v) => (v.trim() === '' ? 0 : Number(v));

const budgetInputs = () => form.querySelectorAll('input[data-period]');

// budgetChanges returns the budget fields the form changes against tok (the
// token edited, or null on a create): only the periods whose limit changed
// (0 removes a window; a new limit keeps what the window has used), and
// budget_timezone only when it changed, since a new zone starts every
// window afresh.
function budgetChanges(tok) {
  const out = {};
  const before = (tok && tok.budgets) || {};
  const budgets = {};
  for (const input of budgetInputs()) {
    const p = input.dataset.period;
    const v = int(input.value); // NaN (not a number) reaches the API as null: invalid_budgets
    if (v !== (before[p] || 0)) budgets[p] = v;
  }
  if (Object.keys(budgets).length) out.budgets = budgets;
  const tz = $('#f-budget-tz').value.trim();
  if (tz !== ((tok && tok.budget_timezone) || '')) out.budget_timezone = tz;
  return out;
}

// Zones offered for the windows: the browser's own first, then common ones.
{
  const zones = ['UTC', 'Asia/Shanghai', 'Asia/Tokyo', 'Asia/Singapore', 'Asia/Kolkata', 'Europe/London',
    'Europe/Berlin', 'America/New_York', 'America/Los_Angeles', 'Australia/Sydney'];
  const own = Intl.DateTimeFormat().resolvedOptions().timeZone;
  if (own && !zones.includes(own)) zones.unshift(own);
  $('#tz-options').replaceChildren(...zones.map((z) => el('option', { value: z })));
}

form.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  if (!checkIPs()) return;
  const pending = $('#f-model-input').value.trim();
  if (pending) {
    addModels(pending);
    $('#f-model-input').value = '';
  }
  let body;
  try {
    body = {
      name: $('#f-name').value,
      expired_time: expiry(),
      unlimited_quota: $('#f-unlimited').checked,
      remain_quota: int($('#f-quota').value),
      model_limits_enabled: $('#f-models-enabled').checked,
      model_limits: state.models,
      allow_ips: ipEntries($('#f-ips').value).join(','),
      group: $('#f-group').value.trim(),
      rpm_limit: int($('#f-rpm').value),
    };
  } catch (err) {
    showError($('#token-form-error'), err);
    return;
  }
  if (body.expired_time === undefined) delete body.expired_time;
  Object.assign(body, budgetChanges(state.editing));
  const submit = $('#token-submit');
  submit.disabled = true;
  try {
    if (state.editing) {
      await api.updateToken({ id: state.editing.id, ...body });
      closeDialog($('#token-dialog'));
      toast(t('saved'));
      await load();
    } else {
      const count = int($('#f-count').value);
      if (count !== 1) body.count = count;
      const data = await api.createToken(body);
      const created = Array.isArray(data) ? data : [data];
      closeDialog($('#token-dialog'));
      state.page = 1;
      await load();
      showKeys(created.map((x) => ({ name: x.name, key: x.key })));
    }
  } catch (err) {
    if (err instanceof api.ApiError && err.auth) {
      closeDialog($('#token-dialog'));
      handle(err);
    } else {
      showError($('#token-form-error'), err);
      $('#token-form-error').scrollIntoView({ block: 'nearest' });
    }
  } finally {
    submit.disabled = false;
    checkIPs();
  }
});

// ---- start ----

translate();
showView();
if (signedIn()) load();
