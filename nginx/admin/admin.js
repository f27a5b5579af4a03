// chatd admin page: plain JavaScript over /api/v1/admin/* (API.md "Admin").
// It signs in with the normal login; the tokens stay in the HttpOnly cookies
// the API sets: nothing is kept in localStorage or sessionStorage, and no
// token is ever read by this script. Every value goes to the page through
// textContent, never as HTML.
'use strict';

const MODELS = {
  users: {
    title: 'Users', search: true,
    cols: ['username', 'email', 'first_name', 'last_name', 'is_active', 'is_superuser', 'is_verified',
      'is_online', 'last_seen', 'created_at'],
    sorts: ['username', 'email', 'last_seen', 'created_at'],
    filters: { is_active: 'bool', is_verified: 'bool', is_superuser: 'bool', is_online: 'bool' },
    edit: { email: 'text', username: 'text', first_name: 'text', last_name: 'text', avatar_url: 'text',
      bio: 'textarea', is_verified: 'bool', is_superuser: 'bool' },
  },
  messages: {
    title: 'Messages', search: true,
    cols: ['seq', 'content', 'sender_id', 'receiver_id', 'group_id', 'is_read', 'is_deleted', 'created_at'],
    sorts: ['seq', 'created_at'],
    filters: { is_read: 'bool', sender_id: 'uuid', receiver_id: 'uuid', group_id: 'uuid' },
    deletable: true,
  },
  groups: {
    title: 'Groups', search: true,
    cols: ['name', 'description', 'is_private', 'member_count', 'creator_id', 'created_at', 'updated_at'],
    sorts: ['name', 'created_at', 'updated_at'],
    filters: { is_private: 'bool', creator_id: 'uuid' },
    edit: { name: 'text', description: 'textarea', is_private: 'bool' },
    deletable: true,
  },
  group_members: {
    title: 'Group members', search: false,
    cols: ['group_id', 'user_id', 'role', 'joined_at'],
    sorts: ['joined_at'],
    filters: { role: ['admin', 'member'], group_id: 'uuid', user_id: 'uuid' },
    edit: { role: ['admin', 'member'] },
    deletable: true,
  },
  contacts: {
    title: 'Contacts', search: true,
    cols: ['user_id', 'contact_id', 'nickname', 'created_at'],
    sorts: ['created_at'],
    filters: { user_id: 'uuid' },
    deletable: true,
  },
  audit: {
    title: 'Audit log', search: false, readonly: true, noexport: true,
    cols: ['created_at', 'action', 'model', 'object_id', 'admin_id', 'changes'],
    sorts: ['created_at'],
    filters: { model: ['users', 'messages', 'groups', 'group_members', 'contacts'], action: 'text',
      admin_id: 'uuid', object_id: 'uuid' },
  },
};

const $ = (id) => document.getElementById(id);
const el = (tag, props, ...kids) => {
  const e = Object.assign(document.createElement(tag), props || {});
  for (const k of kids) e.append(k);
  return e;
};
let me = null;
const state = { model: 'users', search: '', sort: '', offset: 0, limit: 50, filters: {}, total: 0 };

// ---- API -------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, detail) {
    super(ApiError.text(status, detail));
    this.status = status;
  }
  static text(status, detail) {
    if (Array.isArray(detail)) {
      return detail.map((d) => `${(d.loc || []).slice(1).join('.') || 'request'}: ${d.msg}`).join('\n');
    }
    if (detail && typeof detail === 'object') return detail.reason || detail.code || JSON.stringify(detail);
    return detail || `HTTP ${status}`;
  }
}

async function call(method, path, body, retried) {
  const opts = { method, credentials: 'same-origin', headers: {} };
  if (body !== undefined) {
    opts.headers['Content-Type'] = 'application/json';
    opts.body = JSON.stringify(body);
  }
  const res = await fetch(path, opts);
  // The access cookie lives ACCESS_TOKEN_EXPIRE_MINUTES: renew it once from the refresh cookie.
  if (res.status === 401 && !retried && !path.startsWith('/api/v1/auth/')) {
    const r = await fetch('/api/v1/auth/refresh', { method: 'POST', credentials: 'same-origin' });
    if (r.ok) return call(method, path, body, true);
  }
  if (res.status === 204) return null;
  let json = null;
  try { json = await res.json(); } catch (e) { json = null; }
  if (!res.ok) throw new ApiError(res.status, json && json.detail);
  return json;
}

function showError(err) {
  const box = $('error');
  box.textContent = err ? (err.message || String(err)) : '';
  box.hidden = !err;
  if (err && err.status === 401) showLogin();
}
function notice(text) {
  const box = $('notice');
  box.textContent = text;
  box.hidden = !text;
  clearTimeout(notice.t);
  notice.t = setTimeout(() => { box.hidden = true; }, 4000);
}
async function run(fn) {
  showError(null);
  try { return await fn(); } catch (e) { showError(e); return undefined; }
}

// ---- dialogs ---------------------------------------------------------------------------

function confirmAction(text) {
  const d = $('confirm');
  $('confirm-text').textContent = text;
  d.returnValue = '';
  d.showModal();
  $('confirm-cancel').focus();
  return new Promise((resolve) => d.addEventListener('close', () => resolve(d.returnValue === 'ok'), { once: true }));
}

function promptFields(title, fields) {
  const d = $('prompt');
  $('prompt-title').textContent = title;
  const box = $('prompt-fields');
  box.replaceChildren(...fields.map((f) => el('label', {}, f.label,
    el('input', { name: f.name, type: f.type || 'text', required: true, minLength: f.min || 0, autocomplete: 'off' }))));
  d.returnValue = '';
  d.showModal();
  box.querySelector('input').focus();
  return new Promise((resolve) => d.addEventListener('close', () => {
    if (d.returnValue !== 'ok') return resolve(null);
    const out = {};
    for (const i of box.querySelectorAll('input')) out[i.name] = i.value;
    box.replaceChildren();    // the typed password does not stay in the page
    resolve(out);
  }, { once: true }));
}

// ---- views -----------------------------------------------------------------------------

function show(id) {
  for (const s of ['login', 'refused', 'dashboard', 'list', 'detail']) $(s).hidden = s !== id;
  const view = id === 'list' || id === 'detail' ? state.model : id;
  for (const a of document.querySelectorAll('#nav a')) {
    if (a.dataset.view === view) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

function showLogin() {
  me = null;
  $('nav').hidden = true;
  $('logout').hidden = true;
  $('whoami').textContent = '';
  show('login');
  $('login-username').focus();
}

async function signIn(ev) {
  ev.preventDefault();
  await run(async () => {
    await call('POST', '/api/v1/auth/login', { username: $('login-username').value, password: $('login-password').value });
    $('login-password').value = '';
    await start();
  });
}

async function signOut() {
  await run(() => call('POST', '/api/v1/auth/logout'));
  showLogin();
}

async function dashboard() {
  const s = await call('GET', '/api/v1/admin/stats');
  const labels = { users: 'Users', active_users: 'Active users', online: 'Online now', groups: 'Groups',
    messages: 'Messages', messages_24h: 'Messages, last 24 h' };
  $('stats').replaceChildren(...Object.keys(labels).map((k) =>
    el('div', { className: 'stat' }, el('b', { textContent: String(s[k]) }), el('span', { textContent: labels[k] }))));
  show('dashboard');
}

function query(extra) {
  const p = new URLSearchParams();
  if (state.search.trim()) p.set('search', state.search.trim());
  if (state.sort) p.set('sort', state.sort);
  for (const [k, v] of Object.entries(state.filters)) if (v !== '') p.set(k, v);
  for (const [k, v] of Object.entries(extra || {})) p.set(k, v);
  return p.toString();
}

function cellText(v) {
  if (v === null || v === undefined) return '';
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

function renderHead(m) {
  const ths = m.cols.map((c) => {
    const th = el('th', { scope: 'col' });
    if (!m.sorts.includes(c)) {
      th.textContent = c;
      return th;
    }
    const cur = state.sort || '-' + (state.model === 'group_members' ? 'joined_at' : 'created_at');
    if (cur === c) th.setAttribute('aria-sort', 'ascending');
    if (cur === '-' + c) th.setAttribute('aria-sort', 'descending');
    th.append(el('button', { type: 'button', textContent: c, onclick: () => {
      state.sort = cur === c ? '-' + c : c;
      state.offset = 0;
      go();
    } }));
    return th;
  });
  ths.push(el('th', { scope: 'col', textContent: '' }));
  $('thead').replaceChildren(...ths);
}

function renderRows(m, items) {
  $('tbody').replaceChildren(...items.map((it) => {
    const tds = m.cols.map((c) => {
      const v = it[c];
      const td = el('td', { title: cellText(v) });
      if (c === 'changes') td.append(el('pre', { textContent: JSON.stringify(v, null, 1) }));
      else td.textContent = cellText(v);
      return td;
    });
    const open = m.readonly ? '' : el('button', { type: 'button', className: 'secondary', textContent: 'Open',
      onclick: () => { location.hash = `#/${state.model}/${it.id}`; } });
    open && open.setAttribute('aria-label', `Open ${it.username || it.name || it.id}`);
    tds.push(el('td', {}, open));
    const tr = el('tr', {}, ...tds);
    tr.dataset.id = it.id;
    return tr;
  }));
}

function renderFilters(m) {
  const kids = Object.entries(m.filters).map(([name, kind]) => {
    const cur = state.filters[name] || '';
    let input;
    if (kind === 'bool' || Array.isArray(kind)) {
      const opts = kind === 'bool' ? ['true', 'false'] : kind;
      input = el('select', { name }, el('option', { value: '', textContent: 'any' }),
        ...opts.map((o) => el('option', { value: o, textContent: o, selected: o === cur })));
      input.addEventListener('change', () => { state.filters[name] = input.value; state.offset = 0; go(); });
    } else {
      input = el('input', { name, value: cur, size: kind === 'uuid' ? 36 : 12, placeholder: kind === 'uuid' ? 'id' : '' });
      input.addEventListener('change', () => { state.filters[name] = input.value.trim(); state.offset = 0; go(); });
    }
    return el('label', {}, name, input);
  });
  $('filters').replaceChildren(...kids);
}

async function list() {
  const m = MODELS[state.model];
  const path = `/api/v1/admin/${state.model}`;
  const page = await call('GET', `${path}?${query({ offset: state.offset, limit: state.limit })}`);
  state.total = page.total;
  $('list-title').textContent = m.title;
  $('search-label').hidden = !m.search;
  $('create-user').hidden = state.model !== 'users';
  $('export').hidden = !!m.noexport;
  $('export').href = `${path}/export.csv?${query()}`;
  renderHead(m);
  renderRows(m, page.items);
  const last = state.offset + page.items.length;
  const total = page.total > 10000 ? '10000+' : String(page.total);
  $('range').textContent = page.items.length ? `${state.offset + 1}–${last} of ${total}` : `0 of ${total}`;
  $('prev').disabled = state.offset === 0;
  $('next').disabled = last >= page.total;
  show('list');
}

function fieldFor(name, kind, value) {
  if (kind === 'bool') {
    return el('label', { className: 'check' }, el('input', { type: 'checkbox', name, checked: !!value }), name);
  }
  if (Array.isArray(kind)) {
    return el('label', {}, name, el('select', { name },
      ...kind.map((o) => el('option', { value: o, textContent: o, selected: o === value }))));
  }
  const input = kind === 'textarea' ? el('textarea', { name, rows: 3 }) : el('input', { name });
  input.value = value === null || value === undefined ? '' : value;
  return el('label', { className: kind === 'textarea' ? 'full' : '' }, name, input);
}

async function detail(id) {
  const m = MODELS[state.model];
  const row = await call('GET', `/api/v1/admin/${state.model}/${id}`);
  $('back').href = `#/${state.model}`;
  $('detail-title').textContent = `${m.title}: ${row.username || row.name || row.id}`;
  const form = $('edit-form');
  const kids = [];
  for (const [k, v] of Object.entries(row)) {
    if (m.edit && m.edit[k]) continue;
    kids.push(el('label', {}, k, el('input', { value: cellText(v), readOnly: true })));
  }
  for (const [k, kind] of Object.entries(m.edit || {})) kids.push(fieldFor(k, kind, row[k]));
  if (m.edit) kids.push(el('div', { className: 'full' }, el('button', { type: 'submit', textContent: 'Save changes' })));
  form.replaceChildren(...kids);
  form.onsubmit = (ev) => { ev.preventDefault(); run(() => save(id, m)); };
  $('actions').replaceChildren(...actionsFor(row, m));
  show('detail');
}

function actionsFor(row, m) {
  const out = [];
  if (state.model === 'users') {
    const active = row.is_active;
    out.push(el('button', { type: 'button', className: active ? 'danger' : '', id: 'toggle-active',
      textContent: active ? 'Deactivate' : 'Reactivate', onclick: () => run(() => setActive(row, !active)) }));
    out.push(el('button', { type: 'button', className: 'secondary', id: 'set-password', textContent: 'Set password',
      onclick: () => run(() => setPassword(row)) }));
  }
  if (m.deletable) {
    out.push(el('button', { type: 'button', className: 'danger', id: 'delete', textContent: 'Delete',
      onclick: () => run(() => remove(row)) }));
  }
  return out;
}

async function save(id, m) {
  const form = $('edit-form');
  const body = {};
  for (const [k, kind] of Object.entries(m.edit)) {
    const f = form.elements[k];
    if (kind === 'bool') body[k] = f.checked;
    else body[k] = f.value === '' && !['email', 'username', 'name', 'role'].includes(k) ? null : f.value;
  }
  await call('PATCH', `/api/v1/admin/${state.model}/${id}`, body);
  notice('Saved.');
  await detail(id);
}

async function setActive(row, active) {
  const who = row.username;
  if (!active && !(await confirmAction(`Deactivate ${who}? Their sessions end and their WebSockets close at once.`))) return;
  await call('PATCH', `/api/v1/admin/users/${row.id}`, { is_active: active });
  notice(active ? `${who} reactivated.` : `${who} deactivated.`);
  await detail(row.id);
}

async function setPassword(row) {
  const v = await promptFields(`New password for ${row.username}`,
    [{ name: 'password', label: 'New password (8–128 characters)', type: 'password', min: 8 }]);
  if (!v) return;
  await call('PUT', `/api/v1/admin/users/${row.id}/password`, { password: v.password });
  notice(`Password of ${row.username} set; their sessions ended.`);
}

async function createUser() {
  const v = await promptFields('New user', [
    { name: 'email', label: 'Email', type: 'email' },
    { name: 'username', label: 'Username' },
    { name: 'password', label: 'Password (8–128 characters)', type: 'password', min: 8 }]);
  if (!v) return;
  const u = await call('POST', '/api/v1/admin/users', v);
  notice(`${u.username} created.`);
  location.hash = `#/users/${u.id}`;
}

async function remove(row) {
  const what = MODELS[state.model].title.toLowerCase().replace(/s$/, '');
  if (!(await confirmAction(`Delete this ${what}? This cannot be undone.`))) return;
  await call('DELETE', `/api/v1/admin/${state.model}/${row.id}`);
  notice('Deleted.');
  location.hash = `#/${state.model}`;
}

// ---- routing ---------------------------------------------------------------------------

function go() {
  const p = new URLSearchParams(query({ offset: state.offset, limit: state.limit }));
  const h = `#/${state.model}?${p}`;
  if (location.hash === h) route(); else location.hash = h;
}

async function route() {
  if (!me) return;
  const [path, qs] = location.hash.replace(/^#\/?/, '').split('?');
  const [view, id] = path.split('/');
  await run(async () => {
    if (!view || view === 'dashboard') return dashboard();
    if (!MODELS[view]) throw new ApiError(404, 'Not Found');
    if (view !== state.model) Object.assign(state, { model: view, search: '', sort: '', offset: 0, filters: {} });
    if (id) return detail(id);
    const p = new URLSearchParams(qs || '');
    state.search = p.get('search') || '';
    state.sort = p.get('sort') || '';
    state.offset = Number(p.get('offset')) || 0;
    state.limit = Number(p.get('limit')) || 50;
    state.filters = {};
    for (const k of Object.keys(MODELS[view].filters)) if (p.has(k)) state.filters[k] = p.get(k);
    if (document.activeElement !== $('search')) $('search').value = state.search;
    $('limit').value = String(state.limit);
    renderFilters(MODELS[view]);
    return list();
  });
}

async function start() {
  // The stats call is the check: it re-reads superuser status on the server.
  try {
    me = await call('GET', '/api/v1/users/me');
    await call('GET', '/api/v1/admin/stats');
  } catch (e) {
    if (e.status === 401) return showLogin();
    $('nav').hidden = true;
    $('logout').hidden = false;
    $('refused-text').textContent = e.message;
    show('refused');
    showError(e);
    me = null;
    return undefined;
  }
  $('nav').hidden = false;
  $('logout').hidden = false;
  $('whoami').textContent = `Signed in as ${me.username}`;
  return route();
}

function debounce(fn, ms) {
  let t;
  return (...a) => { clearTimeout(t); t = setTimeout(() => fn(...a), ms); };
}

document.addEventListener('DOMContentLoaded', () => {
  $('login-form').addEventListener('submit', signIn);
  $('logout').addEventListener('click', signOut);
  $('refused-logout').addEventListener('click', signOut);
  $('create-user').addEventListener('click', () => run(createUser));
  $('list-tools').addEventListener('submit', (ev) => ev.preventDefault());
  $('search').addEventListener('input', debounce(() => {
    state.search = $('search').value;
    state.offset = 0;
    go();
  }, 300));
  $('prev').addEventListener('click', () => { state.offset = Math.max(0, state.offset - state.limit); go(); });
  $('next').addEventListener('click', () => { state.offset += state.limit; go(); });
  $('limit').addEventListener('change', () => { state.limit = Number($('limit').value); state.offset = 0; go(); });
  window.addEventListener('hashchange', route);
  start();
});
