// The sitepulse browser collector, served as /sp.js (bundled by build.mjs).
// Wire contract: sitepulse.collect.payloads (CollectBatch, BrowserEvent,
// LeadSubmission). Usage:
//   <script defer src="https://collector.example/sp.js" data-site="KEY"></script>
import { onCLS, onFCP, onINP, onLCP, onTTFB } from 'web-vitals';

const w = window;
const d = document;
const nav = navigator;
const loc = location;
const now = Date.now;

const IDLE_MS = 30000; // engaged time stops counting this long after the last input
const FLUSH_MS = 5000;
const BATCH_EVENTS = 20;
const MAX_EVENTS = 100; // CollectBatch.events max_length
const MAX_BODY = 60000; // keepalive fetch and sendBeacon bodies are capped at 64 KB
const THROTTLE_MS = 2000; // at most one focus/blur/invalid per field in this window
const VID = 'sp_vid';
const SKIP_TYPES = /^(submit|button|reset|image|hidden|file|password)$/;
const DOWNLOAD = /\.(pdf|zip|rar|7z|gz|tgz|docx?|xlsx?|pptx?|odt|ods|csv|txt|rtf|epub|mp3|wav|mp4|mov|avi|webm|dmg|exe|msi|pkg|apk|iso)$/i;
// LeadSubmission's top-level text fields and their max lengths; anything else goes to `fields`.
const LEAD_FIELDS = {
  email: 254, phone: 40, name: 500, company: 500, company_size: 40, industry: 500,
  country: 60, budget: 60, timeline: 60, message: 10000,
};

// Nothing here may ever break the host page, so every entry point is wrapped.
const safe = (fn) => function () {
  try {
    return fn.apply(this, arguments);
  } catch (e) {
    // Swallowed on purpose: analytics must not surface errors in the page.
  }
};
const listen = (target, types, fn, opts) =>
  types.split(' ').forEach((type) => target.addEventListener(type, safe(fn), opts));
const later = (fn, ms) => setTimeout(safe(fn), ms);
const attr = (el, name) => el.getAttribute(name);
// The server rejects a whole batch when one string is too long, so clamp here.
const cut = (s, n) => String(s == null ? '' : s).slice(0, n);
const hex = (bytes) =>
  Array.from(crypto.getRandomValues(new Uint8Array(bytes)), (b) => (b + 256).toString(16).slice(1)).join('');
// randomUUID needs a secure context; plain-http pages get a v4 UUID from getRandomValues.
const uuid = () =>
  crypto.randomUUID ? crypto.randomUUID() : hex(16).replace(/^(.{8})(.{4}).(.{3}).(.{3})/, '$1-$2-4$3-8$4-');
const post = (url, body, keepalive) =>
  // text/plain keeps the request "simple": no CORS preflight.
  fetch(url, { method: 'POST', body, keepalive, credentials: 'omit', headers: { 'Content-Type': 'text/plain' } });
const storage = (fn) => {
  try {
    return fn(localStorage);
  } catch (e) {
    // Storage can be disabled or full; the id then lives for this page only.
  }
};

// A stand-in element keeps a script injected without data-site inert instead of throwing.
const me = d.currentScript || d.querySelector('script[data-site]') || d.createElement('script');
const conf = me.dataset;
const site = conf.site;
const base = new URL(me.src, loc.href).origin + '/api/v1/';
const prior = w.sitepulse;
// GPC is a legal opt-out signal, so unlike DNT a page cannot switch it off.
const off = !site || nav.globalPrivacyControl ||
  (conf.respectDnt != 'false' && (nav.doNotTrack == '1' || w.doNotTrack == '1'));
const needConsent = 'requireConsent' in conf && conf.requireConsent != 'false';
const autoForms = conf.autoForms != 'false';

let queue = [];
let timer = 0;
let ids = null;
// The stored id exists only because consent(true) ran on an earlier page.
let vid = off ? '' : storage((s) => s.getItem(VID)) || '';
let page = null;
// keepalive requests share a 64 KB in-flight budget per page, so they are kept for unload.
let unloading = false;
let started = new WeakSet();
const retried = new WeakSet();
const lastSeen = new WeakMap();
const exposed = new Set();
const busy = new WeakSet();

function emit(type, name, value, props, extra) {
  if (off) return {};
  const event = { event_id: uuid(), ts: now(), type, url: page.url };
  if (name) event.name = cut(name, 200);
  if (value != null && isFinite(value)) event.value = +value;
  if (props) event.props = props;
  // The queue only fills up while waiting for consent; the earliest events (the
  // pageview, load vitals) matter most, so the newest are the ones dropped.
  if (queue.length < MAX_EVENTS) queue.push(Object.assign(event, extra));
  if (queue.length >= BATCH_EVENTS) flush();
  else timer = timer || later(flush, FLUSH_MS);
  return event;
}

function flush() {
  retitle();
  clearTimeout(timer);
  timer = 0;
  if (queue.length && !(needConsent && !vid)) send(queue.splice(0));
}

function send(events) {
  let tz = '';
  try {
    tz = Intl.DateTimeFormat().resolvedOptions().timeZone;
  } catch (e) {
    // Old engines without Intl time zones: the server falls back to geo-IP.
  }
  const batch = {
    site_key: site, events, sent_at: now(), screen_width: screen.width,
    timezone: cut(tz, 64), language: cut(nav.language, 35),
  };
  if (vid) batch.visitor_id = vid;
  if (nav.webdriver) batch.automation = true;
  const body = JSON.stringify(batch);
  if (events.length > 1 && (events.length > MAX_EVENTS || new Blob([body]).size > MAX_BODY)) {
    const half = events.length >> 1;
    send(events.slice(0, half));
    send(events.slice(half));
    return;
  }
  // A hidden page may be frozen or unloaded at any moment: only a beacon is sure to leave.
  if (d.visibilityState == 'hidden' && nav.sendBeacon &&
    nav.sendBeacon(base + 'collect', new Blob([body], { type: 'text/plain' }))) return;
  post(base + 'collect', body, unloading)
    .then((res) => {
      if (res.ok) return res.json().then(safe(gotIds), () => 0);
      // Other 4xx answers would fail again; event_id makes a resend harmless.
      if (res.status == 429 || res.status > 499) throw res;
    })
    .catch(safe(() => {
      const again = events.filter((e) => !retried.has(e));
      again.forEach((e) => retried.add(e));
      queue.unshift(...again);
      timer = timer || later(flush, FLUSH_MS);
    }));
}

function gotIds(json) {
  if (json && json.session_id) {
    ids = { visitor_id: json.visitor_id, session_id: json.session_id };
    stamp();
  }
}

// Lets a site's own backend tie its form posts to our visitor and session.
function stamp() {
  if (ids) {
    d.querySelectorAll('form[data-sp-form]').forEach((form) => {
      for (const key in ids) {
        const name = 'sitepulse_' + key;
        let input = form.querySelector(`input[name="${name}"]`);
        if (!input) {
          input = form.appendChild(d.createElement('input'));
          input.type = 'hidden';
          input.name = name;
        }
        input.value = ids[key];
      }
    });
  }
}

// Engaged time counts the visible time that follows each input, up to IDLE_MS.
function tick() {
  const t = now();
  if (page.last) page.engaged += Math.min(t - page.last, IDLE_MS);
  page.last = d.hidden ? 0 : t;
}

function measureScroll(milestones) {
  const height = d.documentElement.scrollHeight;
  const depth = height ? Math.min(100, Math.round((w.scrollY + w.innerHeight) / height * 100)) : 100;
  page.depth = Math.max(page.depth, depth);
  if (milestones) {
    for (const mark of [25, 50, 75, 90]) {
      if (depth >= mark && !page.marks.includes(mark)) {
        page.marks.push(mark);
        emit('engagement', 'scroll', mark, { milestone: true, pageview_id: page.id });
      }
    }
  }
}

function pageview(referrer) {
  const t = now();
  page = { url: cut(loc.href, 2048), start: t, last: d.hidden ? 0 : t, engaged: 0, depth: 0, marks: [] };
  page.pv = emit('pageview', '', null, null, { referrer: cut(referrer, 2048) });
  page.id = page.pv.event_id;
  started = new WeakSet();
  d.querySelectorAll('[data-sp-experiment][data-sp-variant]').forEach((el) =>
    exposure(el.dataset.spExperiment, el.dataset.spVariant));
  stamp();
}

// SPA routers usually set the title after pushState, so it is read as late as
// possible: when the pageview is first sent or its page is left.
function retitle() {
  if (page && page.pv) {
    page.pv.title = cut(d.title, 500);
    page.pv = 0;
  }
}

// Values are cumulative for the page, so a page hidden and shown again sends
// larger ones next time; pageview_id lets the server keep the latest.
function leave() {
  if (page.left) return;
  page.left = 1;
  retitle();
  tick();
  measureScroll();
  const props = { pageview_id: page.id };
  emit('engagement', 'scroll', page.depth, props);
  emit('engagement', 'engaged_time', page.engaged, props);
  emit('engagement', 'page_leave', now() - page.start, props);
}

// In-page anchors (#section) are not navigations; hash routes (#/path, #!path) are.
const routeOf = (url) => url.replace(/#(?![!/]).*/, '');

function route() {
  if (routeOf(loc.href) != routeOf(page.url)) {
    const from = page.url;
    leave();
    pageview(from);
  }
}

function formName(form) {
  const action = attr(form, 'action');
  return cut(attr(form, 'id') || attr(form, 'name') ||
    (action && new URL(action, loc.href).pathname) || 'form' + [].indexOf.call(d.forms, form), 200);
}

// The tracked form of a field element, or null for buttons, hidden and ignored forms.
function trackedForm(el) {
  const form = el.form;
  return autoForms && form && /^(INPUT|SELECT|TEXTAREA)$/.test(el.tagName) && !SKIP_TYPES.test(el.type) &&
    !form.hasAttribute('data-sp-ignore') ? form : null;
}

function fieldProps(el, form) {
  return { form: formName(form), field: cut(attr(el, 'name') || el.id, 200), field_type: el.type };
}

// True when this kind of event was already recorded for the field in the last THROTTLE_MS.
function throttled(el, kind) {
  const seen = lastSeen.get(el) || {};
  const t = now();
  lastSeen.set(el, seen);
  if (t - (seen[kind] || 0) < THROTTLE_MS) return true;
  seen[kind] = t;
}

function onField(e) {
  const el = e.target;
  const form = trackedForm(el);
  if (!form) return;
  const props = fieldProps(el, form);
  if (e.type == 'focusin') {
    if (!started.has(form)) {
      started.add(form);
      emit('form', 'form_start', null, { form: props.form });
    }
    if (!throttled(el, 'focus')) emit('form', 'field_focus', null, props);
  } else if (e.type == 'focusout') {
    // Only whether the field holds something: never its value.
    props.filled = /^(checkbox|radio)$/.test(el.type) ? el.checked : !!el.value;
    if (!throttled(el, 'blur')) emit('form', 'field_blur', null, props);
  } else if (!throttled(el, 'invalid')) {
    props.reason = 'invalid';
    emit('form', 'submit_error', null, props);
  }
}

function onClick(e) {
  const link = e.target.closest && e.target.closest('a[href]');
  // auxclick also fires for right clicks, which open a menu rather than the link.
  if (!link || (e.type == 'auxclick' && e.button != 1)) return;
  const url = new URL(link.href, loc.href);
  if (!/^https?:$/.test(url.protocol)) return;
  const props = { href: cut(url.host + url.pathname, 500) };
  if (link.hasAttribute('download') || DOWNLOAD.test(url.pathname)) emit('click', 'download', null, props);
  else if (url.host != loc.host) emit('click', 'outbound', null, props);
}

function onLeadSubmit(e) {
  const form = e.target;
  // The page's own handlers run first; their preventDefault vetoes the submission.
  if (!form.hasAttribute('data-sp-lead') || e.defaultPrevented) return;
  e.preventDefault();
  if (busy.has(form)) return;
  busy.add(form);
  const lead = {
    site_key: site, lead_id: uuid(), ts: now(), form: formName(form),
    url: cut(loc.href, 2048), referrer: cut(d.referrer, 2048), fields: {},
  };
  Object.assign(lead, ids);
  for (const el of form.elements) {
    const key = el.name;
    const type = el.type;
    if (!key || el.disabled || /^sitepulse_/.test(key) || /^(submit|button|reset|image|file|password)$/.test(type) ||
      (/^(checkbox|radio)$/.test(type) && !el.checked)) continue;
    if (key == 'consent') lead.consent = !/^(0|false|no|off)?$/i.test(el.value);
    else if (LEAD_FIELDS.hasOwnProperty(key)) lead[key] = cut(el.value, LEAD_FIELDS[key]);
    else if (key in lead.fields) lead.fields[key] += ', ' + el.value;
    else if (Object.keys(lead.fields).length < 50) lead.fields[cut(key, 200)] = cut(el.value, 1000);
  }
  const fail = (reason) => {
    busy.delete(form);
    emit('form', 'submit_error', null, { form: lead.form, reason });
    form.dispatchEvent(new CustomEvent('sitepulse:lead-error', { bubbles: true, detail: { status: +reason || 0 } }));
  };
  post(base + 'leads', JSON.stringify(lead)).then(safe((res) => {
    if (!res.ok) return fail(res.status);
    busy.delete(form);
    form.dispatchEvent(new CustomEvent('sitepulse:lead-success', { bubbles: true }));
    const redirect = attr(form, 'data-sp-redirect');
    if (redirect) return loc.assign(redirect);
    const sel = attr(form, 'data-sp-success');
    const done = sel && (d.getElementById(sel) || d.querySelector(sel));
    form.reset();
    if (done) {
      done.hidden = false;
      if (done.style.display == 'none') done.style.display = '';
      if (!form.contains(done)) form.hidden = true;
    }
  }), safe(() => fail('network')));
}

function exposure(experiment, variant) {
  const key = experiment + '\n' + variant;
  if (!exposed.has(key)) {
    exposed.add(key);
    emit('exposure', experiment, null, { variant: cut(variant, 200) });
  }
}

// Custom props are page input: keep only what CollectBatch accepts.
function cleanProps(props) {
  if (props && typeof props == 'object') {
    const out = {};
    Object.keys(props).slice(0, 50).forEach((key) => {
      const v = props[key];
      out[cut(key, 200)] = v == null || typeof v == 'number' || typeof v == 'boolean' ? v :
        cut(typeof v == 'object' ? JSON.stringify(v) : v, 1000);
    });
    return out;
  }
}

function consent(granted) {
  if (off) return;
  if (granted) {
    vid = vid || hex(16);
    storage((s) => s.setItem(VID, vid));
    flush();
  } else {
    vid = '';
    storage((s) => s.removeItem(VID));
    if (needConsent) queue = [];
  }
}

function start() {
  // The lead form is the visitor's own request, so it works even when tracking is off.
  listen(d, 'submit', onLeadSubmit);
  if (off) return;
  const landing = cut(loc.href, 2048);
  // Vitals describe the hard navigation, so they keep the landing URL after SPA route changes.
  const vital = (m) => emit('vital', m.name, m.value,
    { rating: m.rating, navigation_type: m.navigationType, id: m.id }, { url: landing });
  [onLCP, onINP, onCLS, onFCP, onTTFB].forEach((report) => report(safe(vital)));
  pageview(d.referrer);

  for (const method of ['pushState', 'replaceState']) {
    const original = history[method];
    history[method] = function () {
      const result = original.apply(this, arguments);
      safe(route)();
      return result;
    };
  }
  listen(w, 'popstate', route);
  listen(w, 'pageshow', (e) => {
    unloading = false;
    if (e.persisted) pageview(d.referrer); // restored from the back/forward cache
  });
  // web-vitals reports LCP, CLS and INP from window capture listeners, which run before
  // this document listener, so the flush below carries them.
  listen(d, 'visibilitychange', () => {
    if (d.hidden) {
      leave();
      flush();
    } else {
      page.left = 0;
      tick();
    }
  });
  listen(w, 'pagehide', () => {
    unloading = true;
    leave();
    flush();
  });
  listen(w, 'mousemove keydown scroll pointerdown touchstart wheel', tick, { capture: true, passive: true });
  let scrollTimer = 0;
  listen(w, 'scroll', () => {
    scrollTimer = scrollTimer || later(() => {
      scrollTimer = 0;
      measureScroll(1);
    }, 250);
  }, { passive: true });
  listen(d, 'focusin focusout invalid', onField, true);
  listen(d, 'submit', (e) => {
    const form = e.target;
    if (autoForms && !form.hasAttribute('data-sp-ignore')) emit('form', 'submit', null, { form: formName(form) });
    stamp();
  }, true);
  listen(d, 'click auxclick', onClick, true);
}

if (!(prior && prior.flush)) { // a second copy of the script stays inert
  // Callable too, so the queue snippet's sitepulse('track', ...) style keeps working after load.
  const api = safe((method, ...args) => methods.hasOwnProperty(method) && api[method](...args));
  const methods = {
    track: (name, props, value) => emit('custom', name, value, cleanProps(props)),
    exposure,
    consent,
    formError: (form, reason) =>
      emit('form', 'submit_error', null, { form: typeof form == 'string' ? cut(form, 200) : formName(form), reason: cut(reason, 500) }),
    flush,
    ids: () => ids && Object.assign({}, ids),
  };
  for (const key in methods) api[key] = safe(methods[key]);
  safe(start)();
  w.sitepulse = api;
  ((prior && prior.q) || []).forEach((args) => api.apply(null, args));
}
