// AI-GO Model Tracker dashboard. Renders GET /v1/counts, fills its feed from GET /v1/changes,
// follows GET /v1/stream (SSE) and falls back to polling /v1/counts and /v1/changes while
// streaming is unavailable. No framework, no build
// step, no network beyond this node: every number on the page comes from the API.
(() => {
  'use strict';

  const LOCALES = ['en', 'ko'];
  const STORAGE_KEY = 'aigo.locale';
  const POLL_MS = 3000;
  const FEED_MAX = 30;
  const STREAM_RETRY_MIN_MS = 2000;
  const STREAM_RETRY_MAX_MS = 30000;
  // The stream sends freshness every second; this long without a message means it is dead.
  const STREAM_SILENCE_MS = 5000;
  const SERIES_REFRESH_MS = 60000;
  const STATUSES = ['operational', 'degraded', 'outage'];
  const RANGES = {
    day: { spanMs: 24 * 3600e3, step: '1h' },
    week: { spanMs: 7 * 24 * 3600e3, step: '6h' },
  };

  const TEXT = {
    en: {
      title: 'AI-GO Model Tracker',
      tagline: 'Every number from one event log, pushed the moment it changes.',
      skip: 'Skip to the numbers',
      language: 'Language',
      overview: 'Models',
      total: 'Total models',
      active: 'Active',
      inactive: 'Inactive',
      retired: 'Retired',
      loading: 'Loading…',
      statusHeading: 'Operational status',
      'status.operational': 'Operational',
      'status.degraded': 'Degraded',
      'status.outage': 'Outage',
      regionsHeading: 'Regions',
      regionsCaption: 'Models each region serves, and how recently this node heard from it',
      region: 'Region',
      available: 'Available',
      freshness: 'Freshness',
      live: 'Live',
      stale: 'Stale · {age}',
      becameStale: '{region} is stale: not heard from for {age}.',
      becameLive: '{region} is live again.',
      heardAgo: 'heard {age} ago',
      neverHeard: 'not heard from yet',
      lastEventHeading: 'Last event folded',
      providersHeading: 'Providers',
      providersCaption: 'Models per provider (not retired), and how many are active',
      provider: 'Provider',
      share: 'Share',
      historyHeading: 'History',
      lastDay: 'Last 24 hours',
      lastWeek: 'Last 7 days',
      historyUnavailable: 'History unavailable: this node does not answer /v1/counts/series.',
      historyError: 'History could not be loaded; retrying.',
      historyEmpty: 'No history in this range yet.',
      chartSummary: '{range}: total models {total0} → {total1}, active {active0} → {active1}.',
      changesHeading: 'Recent changes',
      feedEmpty: 'Changes appear here as they happen.',
      servedBy: 'Served by the region node',
      'mode.connecting': 'Connecting…',
      'mode.live': 'Live',
      'mode.polling': 'Polling every {seconds} s · stream unavailable',
      'mode.offline': 'Offline · retrying',
      meta: 'Version {version} · updated {time}',
      'event.model_registered': 'registered',
      'event.model_activated': 'activated',
      'event.model_deactivated': 'deactivated',
      'event.model_status_changed': 'status: {status}',
      'event.model_metadata_updated': 'details updated',
      'event.model_retired': 'retired',
      'event.model_served': 'now served in {region}',
      'event.model_withdrawn': 'withdrawn from {region}',
      'unit.s': '{n} s',
      'unit.min': '{n} min',
      'unit.h': '{n} h',
    },
    ko: {
      title: 'AI-GO 모델 트래커',
      tagline: '모든 숫자는 하나의 이벤트 로그에서 나오며, 바뀌는 즉시 반영됩니다.',
      skip: '숫자로 바로 가기',
      language: '언어',
      overview: '모델',
      total: '전체 모델',
      active: '활성',
      inactive: '비활성',
      retired: '종료됨',
      loading: '불러오는 중…',
      statusHeading: '운영 상태',
      'status.operational': '정상',
      'status.degraded': '성능 저하',
      'status.outage': '장애',
      regionsHeading: '리전',
      regionsCaption: '리전별 제공 모델 수와 이 노드가 마지막으로 소식을 받은 시점',
      region: '리전',
      available: '제공 중',
      freshness: '최신성',
      live: '실시간',
      stale: '지연 · {age}',
      becameStale: '{region} 리전이 지연되었습니다: {age} 동안 수신 없음.',
      becameLive: '{region} 리전이 다시 실시간입니다.',
      heardAgo: '{age} 전 수신',
      neverHeard: '아직 수신 없음',
      lastEventHeading: '마지막 반영 이벤트',
      providersHeading: '제공사',
      providersCaption: '제공사별 모델 수(종료 제외)와 그중 활성 모델 수',
      provider: '제공사',
      share: '비율',
      historyHeading: '추이',
      lastDay: '최근 24시간',
      lastWeek: '최근 7일',
      historyUnavailable: '추이를 볼 수 없습니다: 이 노드가 /v1/counts/series에 응답하지 않습니다.',
      historyError: '추이를 불러오지 못했습니다. 다시 시도합니다.',
      historyEmpty: '이 기간의 추이 데이터가 아직 없습니다.',
      chartSummary: '{range}: 전체 모델 {total0} → {total1}, 활성 {active0} → {active1}.',
      changesHeading: '최근 변경',
      feedEmpty: '변경 사항이 생기면 여기에 표시됩니다.',
      servedBy: '응답한 리전 노드',
      'mode.connecting': '연결 중…',
      'mode.live': '실시간',
      'mode.polling': '{seconds}초마다 확인 중 · 스트림 사용 불가',
      'mode.offline': '연결 끊김 · 재시도 중',
      meta: '버전 {version} · {time} 갱신',
      'event.model_registered': '등록됨',
      'event.model_activated': '활성화됨',
      'event.model_deactivated': '비활성화됨',
      'event.model_status_changed': '상태: {status}',
      'event.model_metadata_updated': '정보 수정됨',
      'event.model_retired': '종료됨',
      'event.model_served': '{region}에서 제공 시작',
      'event.model_withdrawn': '{region}에서 제공 중단',
      'unit.s': '{n}초',
      'unit.min': '{n}분',
      'unit.h': '{n}시간',
    },
  };

  const UP = new Set(['model_registered', 'model_activated', 'model_served']);
  const DOWN = new Set(['model_deactivated', 'model_retired', 'model_withdrawn']);

  const state = {
    locale: 'en',
    counts: null,
    // region → {age_ms, stale, last_heard_at, receivedAt}: from counts and freshness events.
    fresh: new Map(),
    mode: 'connecting',
    feed: [],
    // Where GET /v1/changes goes on from: set by the load of recent changes, moved by polls.
    changesCursor: null,
    // The stream delivered changes the cursor does not know of.
    streamMovedOn: false,
    names: new Map(),
    range: 'day',
    series: { status: 'loading' },
    stream: null,
    streamRetryMs: STREAM_RETRY_MIN_MS,
    lastMessageAt: 0,
    retryTimer: null,
    pollTimer: null,
    pollLoop: 0,
  };

  const $ = (selector, root = document) => root.querySelector(selector);
  const $$ = (selector, root = document) => Array.from(root.querySelectorAll(selector));

  function t(key, params) {
    const table = TEXT[state.locale] || TEXT.en;
    const template = table[key] ?? TEXT.en[key] ?? key;
    return template.replace(/\{(\w+)\}/g, (_, name) => (params && name in params ? String(params[name]) : ''));
  }

  function el(tag, attrs, ...children) {
    const node = tag === 'svg' || attrs?.svg ? document.createElementNS('http://www.w3.org/2000/svg', tag) : document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (name === 'svg' || value === undefined || value === null) continue;
      if (name === 'text') node.textContent = value;
      else node.setAttribute(name, String(value));
    }
    for (const child of children) if (child !== null && child !== undefined) node.append(child);
    return node;
  }

  const number = (n) => new Intl.NumberFormat(state.locale).format(n);
  const isCount = (n) => Number.isInteger(n) && n >= 0;

  function time(iso) {
    const date = new Date(iso);
    if (Number.isNaN(date.getTime())) return '';
    return date.toLocaleTimeString(state.locale, { hour: '2-digit', minute: '2-digit', second: '2-digit' });
  }

  function axisTime(at) {
    const options = state.range === 'week' ? { month: 'short', day: 'numeric' } : { hour: '2-digit', minute: '2-digit' };
    return new Date(at).toLocaleString(state.locale, options);
  }

  function age(ms) {
    const s = Math.max(0, ms) / 1000;
    if (s < 90) return t('unit.s', { n: Math.max(1, Math.round(s)) });
    if (s < 5400) return t('unit.min', { n: Math.round(s / 60) });
    return t('unit.h', { n: Math.round(s / 3600) });
  }

  // ---- Locale ---------------------------------------------------------------------------

  function initialLocale() {
    const asked = new URLSearchParams(location.search).get('locale');
    if (LOCALES.includes(asked)) return asked;
    try {
      const stored = localStorage.getItem(STORAGE_KEY);
      if (LOCALES.includes(stored)) return stored;
    } catch (_) { /* storage blocked: fall through */ }
    const preferred = (navigator.languages || [navigator.language || 'en']).map((l) => String(l).slice(0, 2));
    return preferred.find((l) => LOCALES.includes(l)) || 'en';
  }

  function setLocale(locale, remember) {
    state.locale = locale;
    document.documentElement.lang = locale;
    if (remember) {
      try { localStorage.setItem(STORAGE_KEY, locale); } catch (_) { /* not remembered */ }
      // A ?locale= in the address would override the stored choice on reload: keep it in step.
      const url = new URL(location.href);
      if (url.searchParams.has('locale')) {
        url.searchParams.set('locale', locale);
        history.replaceState(null, '', url);
      }
    }
    for (const button of $$('[data-locale]')) {
      button.setAttribute('aria-pressed', String(button.dataset.locale === locale));
    }
    for (const node of $$('[data-i18n]')) node.textContent = t(node.dataset.i18n);
    document.title = t('title');
    renderMode();
    renderAll();
  }

  // ---- Connection: SSE first, polling while streaming is unavailable ----------------------

  function setMode(mode) {
    if (state.mode === mode) return;
    state.mode = mode;
    renderMode();
  }

  function renderMode() {
    const box = $('[data-testid="connection"]');
    box.dataset.mode = state.mode;
    $('[data-testid="connection-text"]').textContent = t(`mode.${state.mode}`, { seconds: POLL_MS / 1000 });
    renderFeedEmpty();
  }

  // Changes only arrive over the stream: say so instead of promising them while polling.
  function renderFeedEmpty() {
    const empty = $('[data-testid="feed-empty"]');
    empty.hidden = state.feed.length > 0;
    empty.textContent = t('feedEmpty');
  }

  function parse(event) {
    try { return JSON.parse(event.data); } catch (_) { return null; }
  }

  function connectStream() {
    if (!('EventSource' in window) || new URLSearchParams(location.search).get('transport') === 'polling') {
      startPolling();
      return;
    }
    const source = new EventSource('/v1/stream');
    state.stream = source;
    state.lastMessageAt = Date.now();
    const heard = (handler) => (e) => { state.lastMessageAt = Date.now(); handler(e); };
    const live = () => {
      state.streamRetryMs = STREAM_RETRY_MIN_MS;
      stopPolling();
      setMode('live');
    };
    source.addEventListener('open', live);
    source.addEventListener('snapshot', heard((e) => { onCounts(parse(e)); live(); }));
    source.addEventListener('counts', heard((e) => onCounts(parse(e))));
    source.addEventListener('change', heard((e) => { state.streamMovedOn = true; onChange(parse(e)); }));
    source.addEventListener('freshness', heard((e) => onFreshness(parse(e))));
    source.addEventListener('error', () => {
      // While CONNECTING the browser retries by itself and sends Last-Event-ID; CLOSED means
      // the server refused (no stream route, 503 over the cap): retry later ourselves.
      if (state.mode === 'live') setMode('connecting');
      startPolling();
      if (source.readyState === EventSource.CLOSED) abandonStream(source);
    });
  }

  function abandonStream(source) {
    source.close();
    if (state.stream === source) state.stream = null;
    state.retryTimer = setTimeout(retryStream, state.streamRetryMs);
    state.streamRetryMs = Math.min(state.streamRetryMs * 2, STREAM_RETRY_MAX_MS);
  }

  function retryStream() {
    clearTimeout(state.retryTimer);
    state.retryTimer = null;
    connectStream();
  }

  // A connection that went silent (a proxy holding it open) never reports an error itself;
  // one that never opens must not leave the page without numbers either.
  function watchStream() {
    const source = state.stream;
    if (!source || Date.now() - state.lastMessageAt <= STREAM_SILENCE_MS) return;
    if (state.mode === 'live') {
      setMode('connecting');
      startPolling();
      abandonStream(source);
    } else if (state.mode === 'connecting') {
      startPolling();
    }
  }

  function startPolling() {
    if (state.pollTimer !== null) return;
    // A tick still in flight from an earlier loop must not start a second loop.
    const loop = ++state.pollLoop;
    const tick = async () => {
      await poll();
      if (state.pollTimer !== null && loop === state.pollLoop) state.pollTimer = setTimeout(tick, POLL_MS);
    };
    state.pollTimer = setTimeout(tick, 0);
  }

  function stopPolling() {
    if (state.pollTimer === null) return;
    clearTimeout(state.pollTimer);
    state.pollTimer = null;
    state.pollLoop += 1;
  }

  async function poll() {
    try {
      // no-store: freshness (age, stale) changes without a new ETag.
      const response = await fetch('/v1/counts', { cache: 'no-store', headers: { Accept: 'application/json' } });
      if (!response.ok) throw new Error(`counts answered ${response.status}`);
      onCounts(await response.json());
      // The node is back after an outage: try the stream now rather than after the backoff.
      if (state.mode === 'offline' && state.retryTimer !== null) retryStream();
      if (state.mode !== 'live') setMode('polling');
    } catch (_) {
      if (state.mode !== 'live') setMode('offline');
      return;
    }
    // The feed follows too; a failure here leaves the counts and the mode as they are.
    try { await followChanges(); } catch (_) { /* next poll */ }
  }

  // One page of GET /v1/changes, or null.
  async function fetchChanges(query) {
    const response = await fetch(`/v1/changes?${query}`, { cache: 'no-store', headers: { Accept: 'application/json' } });
    if (!response.ok) return null;
    const page = await response.json();
    return page && Array.isArray(page.changes) ? page : null;
  }

  // The newest changes, so the feed is not empty until the next event; the stream's own
  // changes that came first stay on top, and none is shown twice (keyed by region:position).
  async function loadRecentChanges() {
    try {
      const page = await fetchChanges(`recent=${FEED_MAX}`);
      if (!page) return;
      if (state.changesCursor === null) state.changesCursor = page.next_cursor;
      for (const change of page.changes.slice().reverse()) addChange(change, 'older');
      renderFeed();
    } catch (_) { /* the feed fills from the stream instead */ }
  }

  // While polling: what came after the last change seen, oldest first. After the stream
  // delivered changes the cursor is behind them: start again from the newest changes.
  async function followChanges() {
    const page = await fetchChanges(state.changesCursor === null || state.streamMovedOn
      ? `recent=${FEED_MAX}`
      : `after=${encodeURIComponent(state.changesCursor)}&limit=${FEED_MAX}`);
    if (!page) return;
    state.changesCursor = page.next_cursor;
    state.streamMovedOn = false;
    for (const change of page.changes) onChange(change);
  }

  // ---- Incoming data --------------------------------------------------------------------

  function onCounts(counts) {
    if (!counts || !isCount(counts.total) || !isCount(counts.active)) return;
    const current = state.counts;
    // A poll answered after a newer stream event must not roll the numbers back.
    if (current && Date.parse(counts.generated_at) < Date.parse(current.generated_at)) return;
    state.counts = counts;
    const now = Date.now();
    for (const [region, r] of Object.entries(counts.regions || {})) {
      state.fresh.set(region, { age_ms: r.age_ms, stale: r.stale, last_heard_at: r.last_heard_at, receivedAt: now });
    }
    document.body.dataset.state = 'ready';
    renderCounts();
    if (!current || current.total !== counts.total || current.active !== counts.active) renderChart();
  }

  function onFreshness(update) {
    if (!update || !update.regions) return;
    const now = Date.now();
    for (const [region, r] of Object.entries(update.regions)) {
      state.fresh.set(region, { age_ms: r.age_ms, stale: r.stale, last_heard_at: r.last_heard_at, receivedAt: now });
    }
    renderRegions();
  }

  function onChange(change) {
    if (addChange(change, 'newer')) renderFeed();
  }

  // Puts a change on top ('newer') or at the bottom ('older') of the feed; false if it is
  // not a change or is shown already.
  function addChange(change, where) {
    if (!change || typeof change.model_id !== 'string') return false;
    const key = `${change.region}:${change.position}`;
    if (state.feed.some((c) => c.key === key)) return false;
    if (where === 'older') {
      if (state.feed.length >= FEED_MAX) return false;
      state.feed.push({ ...change, key });
    } else {
      state.feed.unshift({ ...change, key });
      state.feed.length = Math.min(state.feed.length, FEED_MAX);
    }
    if (!change.name) lookupName(change.model_id);
    return true;
  }

  async function lookupName(id) {
    if (state.names.has(id)) return;
    state.names.set(id, null);
    try {
      const path = id.split('/').map(encodeURIComponent).join('/');
      const response = await fetch(`/v1/models/${path}?locale=${state.locale}`, { headers: { Accept: 'application/json' } });
      if (!response.ok) {
        state.names.delete(id); // not in this node's catalogue yet: ask again on its next change
        return;
      }
      const model = await response.json();
      if (model && typeof model.names === 'object') {
        state.names.set(id, model.names);
        renderFeed();
      }
    } catch (_) { /* the feed shows the id instead */ }
  }

  // ---- Rendering --------------------------------------------------------------------------

  function renderAll() {
    renderCounts();
    renderChart();
    renderFeed();
  }

  function setNumber(node, value) {
    const text = number(value);
    node.classList.remove('loading');
    node.removeAttribute('aria-busy');
    if (node.dataset.value !== String(value)) {
      const first = node.dataset.value === undefined;
      node.dataset.value = String(value);
      if (!first) {
        node.classList.remove('changed');
        void node.offsetWidth; // restart the flash animation
        node.classList.add('changed');
      }
    }
    if (node.textContent !== text) node.textContent = text;
  }

  function renderCounts() {
    const counts = state.counts;
    if (!counts) return;
    for (const node of $$('[data-field]')) {
      const value = counts[node.dataset.field];
      if (isCount(value)) setNumber(node, value);
    }
    renderStatus(counts);
    renderProviders(counts);
    renderRegions();
    const meta = $('[data-testid="meta"]');
    meta.textContent = t('meta', { version: counts.version, time: time(counts.generated_at) });
    $('[data-testid="node-region"]').textContent = counts.node_region || '';
  }

  // Keeps one element per key, in order, so live updates don't rebuild (or re-announce) rows.
  function keyed(container, keys, create, update) {
    const existing = new Map();
    for (const child of Array.from(container.children)) {
      if (child.dataset.key === undefined) child.remove();
      else existing.set(child.dataset.key, child);
    }
    keys.forEach((key, index) => {
      let node = existing.get(key);
      if (!node) {
        node = create(key);
        node.dataset.key = key;
      }
      existing.delete(key);
      update(node, key);
      if (container.children[index] !== node) container.insertBefore(node, container.children[index] || null);
    });
    for (const stale of existing.values()) stale.remove();
  }

  function renderStatus(counts) {
    const byStatus = counts.by_status || {};
    const keys = [...new Set([...STATUSES, ...Object.keys(byStatus)])];
    const sum = keys.reduce((acc, k) => acc + (byStatus[k] || 0), 0);
    keyed($('[data-testid="status-list"]'), keys, (key) => el('li', { class: `s-${key}`, 'data-testid': `status-${key}` },
      el('span', { class: 'name' }, el('span', { class: 'swatch', 'aria-hidden': 'true' }), el('span', { class: 'status-label' })),
      el('span', { class: 'count' }),
      el('span', { class: 'track', 'aria-hidden': 'true' }, el('span', { class: 'fill' }))),
    (node, key) => {
      const n = byStatus[key] || 0;
      $('.status-label', node).textContent = t(`status.${key}`);
      setNumber($('.count', node), n);
      $('.fill', node).style.width = `${sum ? (100 * n) / sum : 0}%`;
    });
  }

  function renderProviders(counts) {
    const providers = Object.entries(counts.by_provider || {})
      .filter(([, c]) => c && isCount(c.total))
      .sort((a, b) => b[1].total - a[1].total || a[0].localeCompare(b[0]));
    const max = providers.reduce((m, [, c]) => Math.max(m, c.total), 0);
    const byName = new Map(providers);
    keyed($('[data-testid="providers-body"]'), providers.map(([p]) => p), (key) => el('tr', { 'data-testid': `provider-${key}` },
      el('th', { scope: 'row', class: 'provider-name', text: key }),
      el('td', { class: 'num total-cell' }),
      el('td', { class: 'num active-cell' }),
      el('td', { class: 'bar', 'aria-hidden': 'true' },
        el('span', { class: 'stack' }, el('span', { class: 'fill total-fill' }), el('span', { class: 'fill active-fill' })))),
    (row, key) => {
      const c = byName.get(key);
      setNumber($('.total-cell', row), c.total);
      setNumber($('.active-cell', row), isCount(c.active) ? c.active : 0);
      $('.total-fill', row).style.width = `${max ? (100 * c.total) / max : 0}%`;
      $('.active-fill', row).style.width = `${max ? (100 * (c.active || 0)) / max : 0}%`;
    });
  }

  function renderRegions() {
    const counts = state.counts;
    if (!counts) return;
    const regions = Object.keys(counts.regions || {}).sort();
    const now = Date.now();
    keyed($('[data-testid="regions-body"]'), regions, (key) => el('tr', { 'data-testid': `region-${key}` },
      el('th', { scope: 'row', class: 'region-name', text: key }),
      el('td', { class: 'num', 'data-testid': `region-available-${key}` }),
      el('td', {}, el('span', { class: 'badge', 'data-testid': `region-badge-${key}` }), el('span', { class: 'freshness-detail' })),
      el('td', { class: 'last-col' }, el('span', { class: 'position' }), el('time', { class: 'freshness-detail' }))),
    (row, key) => {
      const r = counts.regions[key] || {};
      const fresh = state.fresh.get(key) || {};
      if (isCount(r.available)) setNumber($(`[data-testid="region-available-${key}"]`, row), r.available);
      const heard = typeof fresh.age_ms === 'number';
      const ageMs = heard ? fresh.age_ms + (now - fresh.receivedAt) : null;
      const stale = fresh.stale !== false;
      // The ages tick every second, so the table is not a live region; a turn is announced.
      if (row.dataset.stale !== undefined && row.dataset.stale !== String(stale)) {
        $('[data-testid="region-announcer"]').textContent = stale
          ? t('becameStale', { region: key, age: heard ? age(ageMs) : '–' })
          : t('becameLive', { region: key });
      }
      row.dataset.stale = String(stale);
      const badge = $('.badge', row);
      badge.className = `badge ${stale ? 'stale' : 'live'}`;
      badge.textContent = stale ? t('stale', { age: heard ? age(ageMs) : '–' }) : t('live');
      $('.freshness-detail', row).textContent = heard ? t('heardAgo', { age: age(ageMs) }) : t('neverHeard');
      $('.position', row).textContent = Number.isInteger(r.last_event_position) ? `#${number(r.last_event_position)}` : '–';
      const last = $('time', row);
      last.dateTime = r.last_event_at || '';
      last.textContent = r.last_event_at ? time(r.last_event_at) : '';
    });
  }

  function changeName(change) {
    const names = change.name || state.names.get(change.model_id);
    if (names && typeof names === 'object') return names[state.locale] || names.en || change.model_id;
    return change.model_id;
  }

  function renderFeed() {
    const list = $('[data-testid="feed"]');
    keyed(list, state.feed.map((c) => c.key), () => el('li', { 'data-testid': 'change' },
      el('span', { class: 'what model-name', 'data-testid': 'change-name' }),
      el('time', {}),
      el('span', { class: 'detail' }, el('span', { class: 'kind' }), ' ', el('span', { class: 'where' }))),
    (item, key) => {
      const change = state.feed.find((c) => c.key === key);
      const payload = change.payload || {};
      item.dataset.modelId = change.model_id;
      item.dataset.type = change.type;
      $('.model-name', item).textContent = changeName(change);
      const kind = $('.kind', item);
      const status = payload.status ? t(`status.${payload.status}`) : '';
      kind.textContent = t(`event.${change.type}`, { status, region: change.served_region || payload.region || change.region });
      if (kind.textContent === `event.${change.type}`) kind.textContent = String(change.type || '').replace(/_/g, ' ');
      const statusChange = change.type === 'model_status_changed';
      const up = UP.has(change.type) || (statusChange && payload.status === 'operational');
      const down = DOWN.has(change.type) || (statusChange && payload.status !== 'operational');
      kind.className = `kind ${up ? 'up' : down ? 'down' : ''}`;
      const when = $('time', item);
      when.dateTime = change.occurred_at || '';
      when.textContent = time(change.occurred_at);
      $('.where', item).textContent = `· ${change.model_id} · ${change.region} #${change.position}`;
    });
    renderFeedEmpty();
  }

  // ---- History chart (plain SVG) -----------------------------------------------------------

  async function loadSeries() {
    const range = RANGES[state.range];
    const to = new Date();
    const from = new Date(to.getTime() - range.spanMs);
    const query = new URLSearchParams({ from: from.toISOString(), to: to.toISOString(), step: range.step });
    const asked = state.range;
    try {
      const response = await fetch(`/v1/counts/series?${query}`, { cache: 'no-store', headers: { Accept: 'application/json' } });
      if (asked !== state.range) return;
      if (response.status === 404 || response.status === 405 || response.status === 501) {
        state.series = { status: 'unavailable' };
      } else if (!response.ok) {
        state.series = { status: 'error' };
      } else {
        const body = await response.json();
        const points = (Array.isArray(body.points) ? body.points : [])
          .map((p) => ({ at: Date.parse(p.at), total: p.total, active: p.active }))
          .filter((p) => !Number.isNaN(p.at) && isCount(p.total) && isCount(p.active));
        state.series = { status: 'ok', from: from.getTime(), to: to.getTime(), points };
      }
    } catch (_) {
      state.series = { status: 'error' };
    }
    renderChart();
  }

  function renderChart() {
    const box = $('[data-testid="chart"]');
    const series = state.series;
    box.dataset.state = series.status === 'ok' && series.points.length === 0 ? 'empty' : series.status;
    $('.history figcaption').hidden = box.dataset.state !== 'ok';
    if (series.status !== 'ok' || series.points.length === 0) {
      const key = { loading: 'loading', unavailable: 'historyUnavailable', error: 'historyError' }[series.status] || 'historyEmpty';
      box.replaceChildren(el('p', { class: 'chart-message', 'data-testid': 'chart-message', text: t(key) }));
      return;
    }
    box.replaceChildren(drawChart(series, Math.max(280, Math.round(box.clientWidth || 600))));
  }

  function niceMax(value) {
    if (value <= 4) return 4;
    const magnitude = 10 ** Math.floor(Math.log10(value));
    const step = [1, 2, 2.5, 5, 10].find((s) => s * magnitude * 4 >= value) * magnitude;
    return step * 4;
  }

  function drawChart(series, width) {
    const height = width < 520 ? 200 : 260;
    const pad = { left: 44, right: 14, top: 12, bottom: 28 };
    const points = series.points.slice().sort((a, b) => a.at - b.at);
    // The series was read up to a minute ago; the live counts are its newest point.
    const live = state.counts && Date.parse(state.counts.generated_at);
    if (live && live > points[points.length - 1].at) {
      points.push({ at: live, total: state.counts.total, active: state.counts.active });
    }
    const x0 = Math.min(series.from, points[0].at);
    const x1 = Math.max(series.to, points[points.length - 1].at);
    const yMax = niceMax(Math.max(...points.map((p) => p.total)));
    const x = (at) => pad.left + ((at - x0) / Math.max(1, x1 - x0)) * (width - pad.left - pad.right);
    const y = (v) => pad.top + (1 - v / yMax) * (height - pad.top - pad.bottom);
    // Counts change in steps: draw steps, not slopes that would invent in-between values.
    const path = (field) => points.map((p, i) => (i === 0 ? `M${x(p.at).toFixed(1)},${y(p[field]).toFixed(1)}`
      : `H${x(p.at).toFixed(1)}V${y(p[field]).toFixed(1)}`)).join('') + `H${x(x1).toFixed(1)}`;
    const first = points[0];
    const last = points[points.length - 1];
    const label = t('chartSummary', {
      range: t(state.range === 'day' ? 'lastDay' : 'lastWeek'),
      total0: number(first.total), total1: number(last.total), active0: number(first.active), active1: number(last.active),
    });
    const svg = el('svg', { viewBox: `0 0 ${width} ${height}`, width, height, role: 'img', 'aria-label': label, 'data-testid': 'chart-svg' });
    svg.append(el('title', { svg: true, text: label }));
    for (let i = 0; i <= 4; i += 1) {
      const v = (yMax / 4) * i;
      svg.append(el('line', { svg: true, class: 'grid', x1: pad.left, x2: width - pad.right, y1: y(v), y2: y(v) }));
      svg.append(el('text', { svg: true, class: 'axis', x: pad.left - 6, y: y(v) + 4, 'text-anchor': 'end', text: number(v) }));
    }
    const ticks = width < 420 ? 2 : width < 620 ? 3 : 6;
    for (let i = 0; i <= ticks; i += 1) {
      const at = x0 + ((x1 - x0) / ticks) * i;
      const anchor = i === 0 ? 'start' : i === ticks ? 'end' : 'middle';
      svg.append(el('text', { svg: true, class: 'axis', x: x(at), y: height - 8, 'text-anchor': anchor, text: axisTime(at) }));
    }
    const base = y(0).toFixed(1);
    svg.append(el('path', { svg: true, class: 'area total', d: `${path('total')}V${base}H${x(first.at).toFixed(1)}Z` }));
    svg.append(el('path', { svg: true, class: 'line total', d: path('total'), 'data-testid': 'chart-total' }));
    svg.append(el('path', { svg: true, class: 'line active', d: path('active'), 'data-testid': 'chart-active' }));
    return svg;
  }

  // ---- Start ------------------------------------------------------------------------------

  function start() {
    for (const button of $$('[data-locale]')) {
      button.addEventListener('click', () => setLocale(button.dataset.locale, true));
    }
    for (const button of $$('[data-range]')) {
      button.addEventListener('click', () => {
        if (state.range === button.dataset.range) return;
        state.range = button.dataset.range;
        for (const b of $$('[data-range]')) b.setAttribute('aria-pressed', String(b === button));
        state.series = { status: 'loading' };
        renderChart();
        loadSeries();
      });
    }
    setLocale(initialLocale(), false);
    connectStream();
    loadRecentChanges();
    loadSeries();
    setInterval(loadSeries, SERIES_REFRESH_MS);
    // Ages keep growing between updates; stale regions must not look frozen.
    setInterval(() => { renderRegions(); watchStream(); }, 1000);
    if ('ResizeObserver' in window) {
      let lastWidth = 0;
      new ResizeObserver((entries) => {
        const width = Math.round(entries[0].contentRect.width);
        if (Math.abs(width - lastWidth) > 8) { lastWidth = width; renderChart(); }
      }).observe($('[data-testid="chart"]'));
    }
  }

  start();
})();
