// Privastead local UI: a small hash-routed page over this client's local API.
// Everything is built with DOM calls (never innerHTML), so decrypted text stays text.
'use strict';

const main = document.getElementById('main');
const banner = document.getElementById('banner');
let cleanup = null; // stops the current page's livestream or pairing socket

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'style') Object.assign(el.style, v);
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false)
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

// Bumped by every route(): a page whose data arrives after the user moved on must not draw
// over the new page (nor replace its cleanup, which would leave a livestream running).
let navigation = 0;
class Stale extends Error {}

async function api(path) {
  const at = navigation;
  const r = await fetch(path, {cache: 'no-store'});
  if (!r.ok) throw new Error((await r.text()) || r.statusText);
  const data = await r.json();
  if (at !== navigation) throw new Stale('the page was left while loading');
  return data;
}

const enc = encodeURIComponent;
const HEALTH = {
  online: 'Online', offline: 'Hub offline', desync: 'Out of sync', relay_unreachable: 'Relay unreachable',
  withheld: 'Messages withheld', removed: 'Removed', hub_clock: 'Hub clock off',
  camera_offline: 'Camera offline', hub_disk: 'Hub disk full',
};
const CLIP = {complete: 'Clip ready', partial: 'Clip arriving', incomplete: 'Clip incomplete', none: 'No clip yet',
              expired: 'Clip deleted (retention)'};

function ago(t) {
  if (!t) return 'never';
  const s = Math.max(0, Date.now() / 1000 - t);
  if (s < 60) return `${Math.round(s)} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}
const clock = t => new Date(t * 1000).toLocaleTimeString([], {hour: '2-digit', minute: '2-digit'});
const day = t => new Date(t * 1000).toLocaleDateString([], {weekday: 'long', month: 'long', day: 'numeric'});

function loading(text) { return h('p', {class: 'loading'}, h('span', {class: 'spinner'}), text); }
function status(text, error) {
  return h('p', {class: 'status' + (error ? ' error' : ''), role: error ? 'alert' : 'status'},
           error ? null : h('span', {class: 'spinner'}), text);
}
function show(...nodes) { main.replaceChildren(...nodes); }
function badge(state, labels) { return h('span', {class: `badge ${state}`}, labels[state] || state); }

function thumb(ev, big) {
  const box = h('div', {class: 'thumb'});
  if (ev && ev.has_thumbnail) {
    box.append(h('img', {src: `api/events/${enc(ev.event_id)}/thumbnail.jpg`, alt: `event on ${ev.camera}`,
                         loading: 'lazy'}));
    for (const [x, y, w, hh] of ev.boxes)
      box.append(h('div', {class: 'box', style: {left: `${x * 100}%`, top: `${y * 100}%`,
                                                  width: `${w * 100}%`, height: `${hh * 100}%`}}));
    if (ev.score !== null) box.append(h('span', {class: 'score'}, `score ${ev.score.toFixed(2)}`));
  } else {
    box.append(h('div', {class: 'empty'}, ev ? 'no thumbnail' : (big ? '' : 'no events yet')));
  }
  return box;
}

// The banner says, on every page, what this device concluded about its hubs and the relay
// (the client's own judgement: the relay is never trusted to say a hub is fine).
function setBanner(cams) {
  const hubs = state => [...new Set(cams.filter(c => c.health === state).map(c => c.hub))].join(', ');
  const details = state => [...new Set(cams.filter(c => c.health === state).map(c => c.detail))];
  const msgs = [];
  if (hubs('removed')) msgs.push(`This device was removed from ${hubs('removed')}: it receives nothing from it any more. Pair it again to use it.`);
  for (const d of details('withheld')) msgs.push(`Warning: ${d}. Events may be hidden from you; another relay, or the hub's own screen, shows them.`);
  if (hubs('relay_unreachable')) msgs.push('The relay cannot be reached: new events will arrive when it answers again. Check this computer\'s network.');
  if (hubs('offline')) msgs.push(`Hub ${hubs('offline')} is offline: no fresh heartbeat (by the hub's own clock). Check its power and network, or the relay holds its messages back.`);
  if (hubs('desync')) msgs.push(`This device is out of sync with ${hubs('desync')}: re-add it from the hub.`);
  for (const d of details('hub_clock')) msgs.push(`Note: ${d}. Set the hub's clock right (NTP).`);
  for (const d of details('hub_disk')) msgs.push(`Warning: ${d}. Free space on the hub, or lower its retention ([storage] in hub.toml).`);
  for (const c of cams.filter(c => c.health === 'camera_offline'))
    msgs.push(`Camera ${c.name} offline since ${clock(c.offline_since)}: the hub gets no picture from it. Check its power and network.`);
  const bad = ['removed', 'withheld', 'relay_unreachable', 'desync'].some(s => cams.some(c => c.health === s));
  banner.hidden = msgs.length === 0;
  banner.className = 'banner' + (bad ? ' bad' : '');
  banner.dataset.states = [...new Set(cams.map(c => c.health))].sort().join(' ');
  banner.replaceChildren(...msgs.map(m => h('div', {}, m)));
}

// Every page keeps the banner current, not only the camera list.
async function refreshBanner() {
  try {
    const r = await fetch('api/cameras', {cache: 'no-store'});
    if (r.ok) setBanner(await r.json());
  } catch (e) { /* the page itself says when the UI stopped */ }
}
setInterval(refreshBanner, 4000);

// Pages that list things re-read them every few seconds and redraw only when they changed,
// so a new event or a hub going offline shows up without a reload.
let lastData = null;
function poll(page, ...args) {
  const timer = setInterval(() => page(true, ...args).catch(() => {}), 4000);
  cleanup = () => clearInterval(timer);
}
function changed(quiet, data) {
  const text = JSON.stringify(data);
  if (quiet && text === lastData) return false;
  lastData = text;
  return true;
}

async function camerasPage(quiet) {
  if (!quiet) show(h('h1', {}, 'Cameras'), loading('Loading cameras…'));
  const cams = await api('api/cameras');
  if (!changed(quiet, cams)) return;
  setBanner(cams);
  const cards = cams.map(c => h('article', {class: 'card', 'data-camera': c.name},
    thumb(c.last_event),
    h('div', {class: 'body'},
      h('div', {class: 'row'}, h('h2', {}, c.name), badge(c.health, HEALTH)),
      h('p', {class: 'meta'}, `Hub ${c.hub || '—'} · `,
        c.last_event ? `last event ${ago(c.last_event.at)}` : 'no events yet',
        h('br'), c.detail),
      h('div', {class: 'actions'},
        h('a', {class: 'btn', href: `#/camera/${enc(c.name)}`}, 'Events'),
        h('a', {class: 'btn', href: `#/timeline/${enc(c.name)}`}, 'Timeline'),
        h('a', {class: 'btn primary', href: `#/live/${enc(c.name)}`}, '● Live')))));
  show(h('h1', {}, 'Cameras'),
       h('p', {class: 'sub'}, `${cams.length} camera${cams.length === 1 ? '' : 's'}`),
       cams.length ? h('div', {class: 'grid'}, cards)
                   : h('p', {class: 'empty-state'}, 'No cameras yet. Pair a hub to see its cameras here.'));
}

async function cameraPage(quiet, name) {
  const head = [h('div', {class: 'crumbs'}, h('a', {href: '#/cameras'}, 'Cameras'), ' / ', name),
                h('h1', {}, `${name} · events`)];
  if (!quiet) show(...head, loading('Loading events…'));
  const events = await api(`api/cameras/${enc(name)}/events`);
  if (!changed(quiet, events)) return;
  const nodes = [...head, h('p', {class: 'sub'}, `${events.length} most recent events, newest first`,
                              ' · ', h('a', {href: `#/live/${enc(name)}`}, 'watch live'),
                              ' · ', h('a', {href: `#/timeline/${enc(name)}`}, 'timeline and recordings'))];
  if (!events.length) nodes.push(h('p', {class: 'empty-state'}, 'No events from this camera yet.'));
  let current = null, grid = null;
  for (const ev of events) {
    const d = day(ev.at);
    if (d !== current) { current = d; nodes.push(h('div', {class: 'day'}, d)); grid = h('div', {class: 'events'}); nodes.push(grid); }
    grid.append(h('a', {class: 'card event', href: `#/event/${enc(ev.event_id)}`, 'data-event': ev.event_id},
      thumb(ev),
      h('div', {class: 'body row'}, h('strong', {}, clock(ev.at)), badge(ev.clip_state, CLIP))));
  }
  show(...nodes);
}

function canPlay(mime) {
  return (window.MediaSource && MediaSource.isTypeSupported(mime)) ||
         document.createElement('video').canPlayType(mime) === 'probably';
}

async function eventPage(id) {
  show(loading('Loading event…'));
  const {event: ev, clip} = await api(`api/events/${enc(id)}`);
  const video = h('video', {id: 'clip', controls: true, muted: true, autoplay: true, playsinline: true});
  video.muted = true;
  const note = h('div', {});
  const side = h('div', {class: 'card panel'},
    h('dl', {}, h('dt', {}, 'Camera'), h('dd', {}, ev.camera),
                h('dt', {}, 'Time'), h('dd', {}, `${day(ev.at)}, ${clock(ev.at)}`),
                h('dt', {}, 'Score'), h('dd', {}, ev.score === null ? '—' : ev.score.toFixed(2)),
                h('dt', {}, 'Clip'), h('dd', {}, badge(ev.clip_state, CLIP)),
                // The full id, as `privastead-app events`, `clip ID` and `listen` show it.
                h('dt', {}, 'Event id'), h('dd', {class: 'event-id'}, h('code', {}, ev.event_id))),
    h('p', {class: 'meta'}, 'Motion boxes from the hub\'s detector:'), thumb(ev));
  show(h('div', {class: 'crumbs'}, h('a', {href: '#/cameras'}, 'Cameras'), ' / ',
         h('a', {href: `#/camera/${enc(ev.camera)}`}, ev.camera), ' / event'),
       h('h1', {}, `Event at ${clock(ev.at)}`), h('p', {class: 'sub'}, ago(ev.at)),
       h('div', {class: 'two'}, h('div', {}, h('div', {class: 'player'}, video), note), side));
  if (!clip) { note.replaceChildren(status('The clip has not arrived yet; it follows the notification.', true)); return; }
  const h264 = !canPlay(clip.mime);
  note.replaceChildren(status(h264 ? 'This browser cannot play H.265: converting the clip to H.264…' : 'Loading the clip…'));
  video.addEventListener('canplay', () => note.replaceChildren(
    h('p', {class: 'meta'}, clip.complete ? 'Decrypted on this computer.' : 'Part of the clip is still arriving.',
      ' ', h('a', {href: `api/events/${enc(id)}/clip.mp4`, download: `${ev.camera}-${id}.mp4`}, 'Download MP4'))), {once: true});
  video.addEventListener('error', () => note.replaceChildren(status('The clip cannot be played.', true)));
  video.src = `api/events/${enc(id)}/clip.mp4${h264 ? '?h264=1' : ''}`;
}

function livePage(name) {
  const video = h('video', {id: 'live', muted: true, autoplay: true, playsinline: true});
  video.muted = true;
  const pill = h('span', {class: 'pill'}, 'connecting');
  const note = h('div', {}, status('Asking the hub for a livestream…'));
  const stop = h('button', {class: 'btn'}, 'Stop');
  show(h('div', {class: 'crumbs'}, h('a', {href: '#/cameras'}, 'Cameras'), ' / ', name),
       h('div', {class: 'row'}, h('h1', {}, `${name} · live`), stop),
       h('p', {class: 'sub'}, 'End-to-end encrypted livestream, decrypted by this computer.'),
       h('div', {class: 'player'}, video, h('div', {class: 'overlay'}, pill)), note);
  let ws = null, stopped = false;
  const end = text => {
    stopped = true; if (ws) ws.close();
    pill.textContent = 'stopped'; pill.className = 'pill'; stop.disabled = true;
    if (text) note.replaceChildren(status(text, true), h('p', {class: 'meta'},
      h('a', {href: `#/live/${enc(name)}`, onclick: () => setTimeout(route)}, 'Try again')));
  };
  stop.addEventListener('click', () => { end(null); note.replaceChildren(h('p', {class: 'meta'}, 'Livestream stopped. ',
    h('a', {href: `#/live/${enc(name)}`, onclick: () => setTimeout(route)}, 'Start again'))); });
  const open = h264 => {
    ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}${location.pathname}ws/live/${enc(name)}${h264 ? '?h264=1' : ''}`);
    ws.binaryType = 'arraybuffer';
    let buffer = null, queue = [], source = null, started = false;
    const pump = () => {
      if (!buffer || buffer.updating || !queue.length) return;
      try { buffer.appendBuffer(queue.shift()); } catch (e) { end(`The browser refused the stream: ${e.message}`); }
    };
    ws.onmessage = msg => {
      if (typeof msg.data === 'string') {
        const m = JSON.parse(msg.data);
        if (m.error) { end(m.error); return; }
        if (!canPlay(m.mime)) {
          if (h264) { end(`This browser cannot play ${m.mime}.`); return; }
          note.replaceChildren(status('This browser cannot play H.265: asking for an H.264 stream…'));
          ws.onclose = null; ws.close(); open(true); return;
        }
        note.replaceChildren(status('Waiting for the first picture…'));
        if (/mp4a|opus/.test(m.mime)) { // the camera sends sound: muted until asked for (autoplay rules)
          const sound = h('button', {class: 'btn', id: 'sound'}, 'Sound on');
          sound.addEventListener('click', () => { video.muted = !video.muted; sound.textContent = video.muted ? 'Sound on' : 'Sound off'; });
          stop.before(sound);
        }
        source = new MediaSource();
        video.src = URL.createObjectURL(source);
        source.addEventListener('sourceopen', () => {
          buffer = source.addSourceBuffer(m.mime);
          buffer.mode = 'segments';
          buffer.addEventListener('updateend', () => {
            const r = buffer.buffered;
            if (r.length) {
              if (!started) { started = true; video.currentTime = r.start(0); video.play().catch(() => {}); }
              const edge = r.end(r.length - 1);
              if (edge - video.currentTime > 3) video.currentTime = edge - 0.5; // fell behind: jump to live
              if (video.currentTime - r.start(0) > 30 && !buffer.updating) { buffer.remove(r.start(0), video.currentTime - 10); return; }
            }
            pump();
          });
          pump();
        }, {once: true});
        return;
      }
      queue.push(msg.data); pump();
    };
    ws.onclose = () => { if (!stopped) end('The livestream ended: the hub or the relay went away.'); };
    ws.onerror = () => {};
  };
  video.addEventListener('playing', () => {
    pill.textContent = 'LIVE'; pill.className = 'pill live';
    note.replaceChildren(h('p', {class: 'meta'}, 'Live. Motion detection and recording continue while you watch.'));
  });
  open(false);
  cleanup = () => { stopped = true; if (ws) ws.close(); };
}

// A day of one camera: the spans the hub recorded continuously (asked from the hub) and the
// events this device received; click a span to fetch that stretch through the relay and play it.
const isoDay = d => `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
const PLAY_SECONDS = 120; // fetched per click: a couple of minutes from the clicked moment

async function timelinePage(name, dayArg) {
  const d = dayArg ? new Date(`${dayArg}T00:00:00`) : new Date();
  if (isNaN(d)) throw new Error(`${dayArg} is not a day (YYYY-MM-DD)`);
  d.setHours(0, 0, 0, 0);
  const next = new Date(d); next.setDate(d.getDate() + 1);
  const prev = new Date(d); prev.setDate(d.getDate() - 1);
  const start = d.getTime() / 1000, end = next.getTime() / 1000;
  const head = [h('div', {class: 'crumbs'}, h('a', {href: '#/cameras'}, 'Cameras'), ' / ',
                  h('a', {href: `#/camera/${enc(name)}`}, name), ' / timeline'),
                h('div', {class: 'row'}, h('h1', {}, `${name} · ${day(start)}`),
                  h('div', {class: 'actions'},
                    h('a', {class: 'btn', href: `#/timeline/${enc(name)}/${isoDay(prev)}`}, '← Day before'),
                    h('a', {class: 'btn', href: `#/timeline/${enc(name)}/${isoDay(next)}`}, 'Day after →')))];
  show(...head, loading('Asking the hub what it recorded…'));
  const data = await api(`api/cameras/${enc(name)}/timeline?start=${start}&end=${end}`);
  const pos = t => `${Math.max(0, Math.min(100, (t - start) / (end - start) * 100))}%`;
  const bar = h('div', {class: 'timeline', id: 'timeline', title: 'Click a recorded stretch to play it'});
  for (let hour = 0; hour <= 24; hour += 3)
    bar.append(h('span', {class: 'tick', style: {left: `${hour / 24 * 100}%`}}, `${String(hour).padStart(2, '0')}:00`));
  for (const [a, b] of data.spans)
    bar.append(h('div', {class: 'span', 'data-start': a, 'data-end': b,
                         title: `recorded ${clock(a)} to ${clock(b)}`,
                         style: {left: pos(a), width: `calc(${pos(b)} - ${pos(a)})`}}));
  for (const ev of data.events)
    bar.append(h('a', {class: 'mark', href: `#/event/${enc(ev.event_id)}`, 'data-event': ev.event_id,
                       title: `event at ${clock(ev.at)}${ev.score === null ? '' : `, score ${ev.score.toFixed(2)}`}`,
                       style: {left: pos(ev.at)}}));
  const video = h('video', {id: 'playback', controls: true, muted: true, playsinline: true});
  video.muted = true;
  const note = h('div', {});
  const recorded = data.spans.reduce((sum, [a, b]) => sum + Math.min(b, end) - Math.max(a, start), 0);
  const summary = data.error ? `Recordings unknown: ${data.error}.`
    : data.spans.length ? `${(recorded / 3600).toFixed(1)} h recorded in ${data.spans.length} stretch${data.spans.length === 1 ? '' : 'es'}.`
    : 'No continuous recording this day: the marks are the events this device received.';
  show(...head,
       h('p', {class: 'sub', id: 'timeline-summary'}, summary, ` ${data.events.length} event${data.events.length === 1 ? '' : 's'}.`),
       h('div', {class: 'card panel'}, bar, h('div', {class: 'legend'},
         h('span', {class: 'key span-key'}), 'recorded', h('span', {class: 'key mark-key'}), 'event')),
       h('div', {class: 'player'}, video), note);
  let h264 = false; // set once this browser refused a recording (H.265): ask for H.264 then
  const play = (from, to) => {
    note.replaceChildren(status(`Fetching ${clock(from)} to ${clock(to)} from the hub (end-to-end encrypted)…`));
    video.dataset.range = `${from},${to}`;
    video.src = `api/cameras/${enc(name)}/recording.mp4?start=${from}&end=${to}${h264 ? '&h264=1' : ''}`;
    video.play().catch(() => {});
  };
  video.addEventListener('loadedmetadata', () => note.replaceChildren(h('p', {class: 'meta'},
    `Playing ${Math.round(video.duration)} s, decrypted on this computer. `,
    h('a', {href: video.src, download: `${name}-${isoDay(d)}.mp4`}, 'Download MP4'))));
  video.addEventListener('error', async () => {
    if (video.error && video.error.code === MediaError.MEDIA_ERR_SRC_NOT_SUPPORTED && !h264) {
      const r = await fetch(video.src, {method: 'HEAD', cache: 'no-store'}).catch(() => null);
      if (r && r.ok) { // fetched fine, but this browser cannot decode it: ask for H.264
        h264 = true;
        const [from, to] = video.dataset.range.split(',').map(Number);
        note.replaceChildren(status('This browser cannot play H.265: converting the recording to H.264…'));
        play(from, to);
        return;
      }
    }
    let text = 'The recording cannot be played.';
    try { const r = await fetch(video.src, {cache: 'no-store'}); if (!r.ok) text = (await r.json()).error || text; } catch (e) { /* keep the generic text */ }
    note.replaceChildren(status(text, true));
  });
  bar.addEventListener('click', e => {
    if (e.target.classList.contains('mark')) return; // an event opens its own page
    const box = bar.getBoundingClientRect();
    const t = start + (e.clientX - box.left) / box.width * (end - start);
    const span = data.spans.find(([a, b]) => t < b && t >= a - 60) || data.spans.find(([a]) => a >= t);
    if (!span) { note.replaceChildren(status('Nothing recorded there.', true)); return; }
    const from = Math.max(span[0], Math.min(t, span[1] - 1));
    play(from, Math.min(span[1], from + PLAY_SECONDS));
  });
}

async function devicesPage() {
  show(h('h1', {}, 'Devices'), loading('Loading devices…'));
  const devices = await api('api/devices');
  show(h('h1', {}, 'Devices'),
       h('p', {class: 'sub'}, 'Compare safety codes with what each hub and device shows: equal codes mean nobody sits in the middle.'),
       devices.length ? h('div', {class: 'card'}, h('table', {},
         h('thead', {}, h('tr', {}, h('th', {}, 'Name'), h('th', {}, 'Role'), h('th', {}, 'Hub'), h('th', {}, 'Safety code'))),
         h('tbody', {}, devices.map(d => h('tr', {}, h('td', {}, h('strong', {}, d.name)), h('td', {}, d.role),
                                           h('td', {}, d.hub), h('td', {class: 'code'}, d.safety_code))))))
       : h('p', {class: 'empty-state'}, 'No devices yet: pair a hub first.'));
}

function pairPage() {
  const code = h('textarea', {id: 'code', placeholder: '417-acorn-shiny  or  privastead:…', spellcheck: 'false', autocomplete: 'off'});
  const relay = h('input', {id: 'relay', type: 'url', placeholder: 'relay URL, for a short code (https://relay.example.org)', spellcheck: 'false', autocomplete: 'off'});
  const go = h('button', {class: 'btn primary', id: 'pair'}, 'Pair');
  const out = h('div', {});
  show(h('h1', {}, 'Pair a hub'),
       h('p', {class: 'sub'}, 'On the hub, run privastead-hub pair. Type the short code it shows (and the relay URL printed beside it, the first time), or paste the long code.'),
       h('div', {class: 'card panel'}, code, relay, h('div', {class: 'actions', style: {marginTop: '12px'}}, go), out));
  go.addEventListener('click', () => {
    if (!code.value.trim()) { out.replaceChildren(status('Type the code first.', true)); return; }
    go.disabled = true;
    const bar = h('div', {}), steps = h('ul', {class: 'steps'}), wait = h('div', {});
    out.replaceChildren(h('div', {class: 'progress'}, bar), steps, wait);
    const ws = new WebSocket(`ws://${location.host}${location.pathname}ws/pair`);
    cleanup = () => ws.close();
    ws.onopen = () => ws.send(JSON.stringify({code: code.value.trim(), relay: relay.value.trim() || null}));
    ws.onmessage = msg => {
      const s = JSON.parse(msg.data);
      bar.style.width = `${Math.round(s.progress * 100)}%`;
      steps.append(h('li', {class: s.error ? 'error' : ''}, s.error ? `${s.message}: ${s.error}` : s.message));
      if (s.waiting_safety_code) {
        // The hub holds this device until its owner confirms: they compare these two.
        wait.replaceChildren(h('div', {id: 'waiting'},
          h('p', {}, 'Waiting for the hub\'s owner to confirm this device. They should see the same safety code and key fingerprint on the hub:'),
          h('div', {class: 'code safety', id: 'waiting-safety'}, s.waiting_safety_code),
          h('div', {class: 'code', id: 'fingerprint'}, s.fingerprint || '')));
      }
      if (s.error || s.safety_code) wait.replaceChildren();
      if (s.safety_code) out.append(h('p', {}, 'Paired: the owner approved this device. The hub shows the same safety code:'),
                                    h('div', {class: 'code safety', id: 'safety'}, s.safety_code));
      if (s.error) out.append(h('p', {class: 'error', id: 'pair-error'}, s.error));
      if (s.error || s.safety_code) go.disabled = false;
    };
    ws.onclose = () => { go.disabled = false; };
  });
}

async function route() {
  const at = ++navigation;
  if (cleanup) { cleanup(); cleanup = null; }
  const [page, arg, ...rest] = (location.hash.slice(2) || 'cameras').split('/').map(decodeURIComponent);
  document.body.dataset.page = page;
  for (const a of document.querySelectorAll('[data-nav]')) a.classList.toggle('active', a.dataset.nav === page || (page !== 'devices' && page !== 'pair' && a.dataset.nav === 'cameras'));
  try {
    lastData = null;
    if (page === 'camera') { await cameraPage(false, arg); poll(cameraPage, arg); }
    else if (page === 'event') await eventPage(arg);
    else if (page === 'live') livePage(arg);
    else if (page === 'timeline') await timelinePage(arg, rest[0]);
    else if (page === 'devices') await devicesPage();
    else if (page === 'pair') pairPage();
    else { await camerasPage(false); poll(camerasPage); }
  } catch (e) {
    if (e instanceof Stale || at !== navigation) return; // another page is showing now
    show(status(`Could not load this page: ${e.message}. Is privastead-app ui still running?`, true));
  }
  if (at === navigation) document.body.dataset.ready = page;
}

window.addEventListener('hashchange', route);
route();
refreshBanner();
