// kiemtra console: the browser's own signing key and the acts it signs.
//
// The key is Ed25519, made by WebCrypto as not extractable and kept in
// IndexedDB: the page can ask the browser to sign with it, nobody can read
// it out. It is enrolled with an enrollment code (the invitation, or a new
// code for another browser). For a signed act the server writes the change
// and this script checks that the change builds on exactly the version the
// page showed before it signs the change's hash (SPEC section 14).
'use strict';
(function () {
  const DB = 'kiemtra-console';
  const STORE = 'keys';
  const body = document.body;
  const vi = document.documentElement.lang !== 'en';
  const say = (v, e) => (vi ? v : e);

  function openDb() {
    return new Promise((ok, fail) => {
      const r = indexedDB.open(DB, 1);
      r.onupgradeneeded = () => r.result.createObjectStore(STORE);
      r.onsuccess = () => ok(r.result);
      r.onerror = () => fail(r.error);
    });
  }
  async function withStore(mode, f) {
    const db = await openDb();
    return new Promise((ok, fail) => {
      const tx = db.transaction(STORE, mode);
      const req = f(tx.objectStore(STORE));
      tx.oncomplete = () => ok(req.result);
      tx.onerror = () => fail(tx.error);
    });
  }
  const hex = (bytes) =>
    Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, '0')).join('');
  function unhex(text) {
    if (!/^([0-9a-f]{2})*$/.test(text)) throw new Error('not hex');
    const out = new Uint8Array(text.length / 2);
    for (let i = 0; i < out.length; i++) out[i] = parseInt(text.substr(2 * i, 2), 16);
    return out;
  }
  function concat(parts) {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) { out.set(p, at); at += p.length; }
    return out;
  }
  const utf8 = (s) => new TextEncoder().encode(s);

  // A new key pair, kept under its public key's hex; the public key is
  // what the enrollment form sends.
  async function newKey() {
    const pair = await crypto.subtle.generateKey({ name: 'Ed25519' }, false, ['sign', 'verify']);
    const pub = hex(await crypto.subtle.exportKey('raw', pair.publicKey));
    await withStore('readwrite', (s) => s.put(pair, pub));
    return pub;
  }

  // The user's enrolled devices this browser holds the key of: [{id, team, pair}].
  async function heldDevices() {
    const out = [];
    for (const entry of (body.dataset.keys || '').split(',')) {
      const [id, team, pub] = entry.split(' ');
      if (!pub) continue;
      const pair = await withStore('readonly', (s) => s.get(pub));
      if (pair && pair.privateKey) out.push({ id, team, pair });
    }
    return out;
  }

  async function sign(pair, message) {
    return hex(await crypto.subtle.sign({ name: 'Ed25519' }, pair.privateKey, message));
  }

  async function post(path, fields) {
    const r = await fetch(path, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(fields).toString(),
    });
    let answer = {};
    try { answer = await r.json(); } catch (_) { answer = {}; }
    if (!r.ok) throw new Error(answer.error || say('Máy chủ trả lời ', 'The server answered ') + r.status);
    return answer;
  }

  // An unsigned LEB128 number at `at` of `b`: [value, next position].
  function uleb(b, at) {
    let v = 0, shift = 0;
    for (;;) {
      if (at >= b.length || shift > 49) throw new Error('truncated');
      const x = b[at++];
      v += (x & 0x7f) * Math.pow(2, shift);
      shift += 7;
      if (!(x & 0x80)) return [v, at];
    }
  }

  // Checks an Automerge change chunk: magic number, checksum, kind, and
  // that its dependencies are exactly `heads`; returns its hash.
  async function checkedHash(change, heads) {
    const magic = [0x85, 0x6f, 0x4a, 0x83];
    if (change.length < 9 || magic.some((m, i) => change[i] !== m)) throw new Error('not a change');
    if (change[8] !== 1) throw new Error('not an uncompressed change');
    const hash = new Uint8Array(await crypto.subtle.digest('SHA-256', change.slice(8)));
    for (let i = 0; i < 4; i++) if (hash[i] !== change[4 + i]) throw new Error('bad checksum');
    let [length, at] = uleb(change, 9);
    if (at + length !== change.length) throw new Error('bad length');
    let count;
    [count, at] = uleb(change, at);
    const deps = [];
    for (let i = 0; i < count; i++) { deps.push(hex(change.slice(at, at + 32))); at += 32; }
    const want = heads.slice().sort().join(' ');
    if (deps.slice().sort().join(' ') !== want) {
      throw new Error(say('thay đổi không dựa trên phiên bản trang đã hiển thị',
        'the change does not build on the version the page showed'));
    }
    return hash;
  }

  // One act: prepare (the server writes the change), check, sign, commit.
  async function act(fields, devices) {
    const device = devices.find((d) => d.team === fields.team);
    if (!device) {
      throw new Error(say('Trình duyệt này không giữ khóa ký của đoàn này. Hãy đăng ký trình duyệt (trang "Khóa ký").',
        'This browser holds no signing key for this team. Enroll it (the "Signing key" page).'));
    }
    const f = Object.assign({}, fields, { device: device.id, csrf: body.dataset.csrf });
    delete f.team;
    const heads = f.heads.split(' ').filter(Boolean);
    let made = await post('/console/acts/prepare', f);
    if (made.approval) {
      const sorted = heads.slice().sort().map(unhex);
      const message = concat([utf8('kiemtra-approval-v1\0' + f.visit + '\0'), ...sorted]);
      f.approval_signature = await sign(device.pair, message);
      made = await post('/console/acts/prepare', f);
    }
    const change = unhex(made.change);
    const hash = await checkedHash(change, heads);
    const message = concat([utf8('kiemtra-changes-v1\0' + f.visit + '\0'), hash]);
    f.change = made.change;
    f.signature = await sign(device.pair, message);
    await post('/console/acts/commit', f);
  }

  function fieldsOf(el) {
    const out = {};
    if (el instanceof HTMLFormElement) for (const [k, v] of new FormData(el)) out[k] = String(v);
    for (const k of ['visit', 'team', 'act', 'heads']) if (el.dataset[k]) out[k] = el.dataset[k];
    return out;
  }

  function show(el, text, bad) {
    const out = el.querySelector('.sign-status') || el.appendChild(document.createElement('p'));
    out.className = 'sign-status' + (bad ? ' error' : '');
    out.setAttribute('role', bad ? 'alert' : 'status');
    out.textContent = text;
  }

  async function supported() {
    try {
      await crypto.subtle.generateKey({ name: 'Ed25519' }, false, ['sign']);
      return true;
    } catch (_) {
      return false;
    }
  }

  // Enrollment forms: a key is made and its public key sent with the code.
  for (const form of document.querySelectorAll('form[data-enroll]')) {
    form.addEventListener('submit', async (ev) => {
      const field = form.querySelector('input[name=public_key]');
      if (field.value) return;
      ev.preventDefault();
      try {
        if (await supported()) field.value = await newKey();
      } catch (e) {
        show(form, e.message, true);
      }
      form.submit();
    });
  }

  // Which of the user's devices this browser holds, on the key page.
  (async () => {
    const list = document.querySelector('[data-held]');
    if (!list) return;
    const held = await heldDevices();
    for (const li of list.querySelectorAll('li[data-device]')) {
      if (held.some((d) => d.id === li.dataset.device)) {
        li.querySelector('.held').textContent = say(' — khóa của trình duyệt này', ' — this browser\'s key');
      }
    }
  })();

  // Signed acts: one form, or a bulk list of visits to approve in turn.
  for (const form of document.querySelectorAll('form.signed')) {
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const button = form.querySelector('button[type=submit]');
      button.disabled = true;
      try {
        const devices = await heldDevices();
        const rows = form.querySelectorAll('[data-visit]');
        if (form.dataset.bulk !== undefined) {
          let done = 0;
          for (const row of rows) {
            show(form, say('Đang ký ', 'Signing ') + (done + 1) + '/' + rows.length + '…');
            try {
              await act(Object.assign(fieldsOf(form), fieldsOf(row)), devices);
              row.querySelector('.outcome').textContent = say('đã phê duyệt', 'approved');
              done++;
            } catch (e) {
              row.querySelector('.outcome').textContent = e.message;
            }
          }
          show(form, say('Đã ký ', 'Signed ') + done + '/' + rows.length, done !== rows.length);
        } else {
          show(form, say('Đang ký…', 'Signing…'));
          await act(fieldsOf(form), devices);
          location.reload();
        }
      } catch (e) {
        show(form, e.message, true);
      } finally {
        button.disabled = false;
      }
    });
  }
  // Administration: the server turns the form into log entries, which
  // this browser signs one by one ("kiemtra-admin-log-v1" and the entry).
  async function postRaw(path, bytes) {
    const r = await fetch(path, { method: 'POST', credentials: 'same-origin', body: bytes });
    let answer = {};
    try { answer = await r.json(); } catch (_) { answer = {}; }
    if (!r.ok) throw new Error(answer.error || say('Máy chủ trả lời ', 'The server answered ') + r.status);
    return answer;
  }
  for (const form of document.querySelectorAll('form.admin-act')) {
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const button = form.querySelector('button[type=submit]');
      button.disabled = true;
      try {
        const devices = await heldDevices();
        if (!devices.length) {
          throw new Error(say('Trình duyệt này không giữ khóa ký của bạn. Hãy đăng ký trình duyệt (trang "Khóa ký").',
            'This browser holds no signing key of yours. Enroll it (the "Signing key" page).'));
        }
        const device = devices[0];
        const kind = form.dataset.kind;
        const fields = Object.assign(fieldsOf(form), { device: device.id, csrf: body.dataset.csrf });
        // A draw's seed is made here and never sent before its reveal:
        // only SHA-256("kiemtra-draw-v1" 00 seed) goes into the log.
        let seed = null;
        if (kind === 'draw-commit') {
          seed = crypto.getRandomValues(new Uint8Array(32));
          fields.commitment = hex(await crypto.subtle.digest('SHA-256', concat([utf8('kiemtra-draw-v1\0'), seed])));
          localStorage.setItem('kiemtra-draw-' + fields.campaign_id, hex(seed));
        }
        if (kind === 'draw-reveal' && !fields.seed) {
          fields.seed = localStorage.getItem('kiemtra-draw-' + fields.campaign_id) || '';
        }
        show(form, say('Đang chuẩn bị…', 'Preparing…'));
        let made;
        const file = form.querySelector('input[type=file]');
        if (file) {
          if (!file.files.length) throw new Error(say('Hãy chọn một tệp.', 'Choose a file.'));
          const q = new URLSearchParams({ csrf: fields.csrf, device: device.id, valid_from: fields.valid_from || '' });
          made = await postRaw('/console/admin/w/import/' + kind + '?' + q.toString(), await file.files[0].arrayBuffer());
        } else {
          made = await post('/console/admin/w/prepare/' + kind, fields);
        }
        // Each entry names the hash of the one before, signature included:
        // they are signed one at a time, the next made after each.
        const tag = utf8('kiemtra-admin-log-v1\n');
        const signed = [];
        let next = made;
        while (signed.length < made.acts.length) {
          const bytes = unhex(next.signing);
          if (tag.some((b, j) => bytes[j] !== b)) throw new Error('not a log entry');
          next.entry.signature = await sign(device.pair, bytes);
          signed.push(next.entry);
          if (signed.length < made.acts.length) {
            show(form, say('Đang ký ', 'Signing ') + (signed.length + 1) + '/' + made.acts.length + '…');
            next = await post('/console/admin/w/next', {
              csrf: fields.csrf, device: device.id,
              acts: JSON.stringify(made.acts), signed: JSON.stringify(signed),
            });
          }
        }
        const done = await post('/console/admin/w/commit', {
          csrf: fields.csrf, device: device.id, entries: JSON.stringify(signed),
        });
        if (seed) {
          show(form, say('Đã ghi cam kết vào sổ (mục ', 'The commitment is in the log (entry ') + done.seq + '). '
            + say('Hạt giống, giữ kín đến khi công bố: ', 'The seed, kept secret until the reveal: ') + hex(seed));
          form.querySelector('.sign-status').dataset.seed = hex(seed);
        } else if (made.code) {
          show(form, say('Đã ghi vào sổ (mục ', 'Written to the log (entry ') + done.seq + '). '
            + say('Mã mời: ', 'Invitation code: ') + made.code);
          form.querySelector('.sign-status').dataset.code = made.code;
        } else {
          show(form, say('Đã ghi vào sổ (mục ', 'Written to the log (entry ') + done.seq + ').');
          setTimeout(() => location.reload(), 600);
        }
      } catch (e) {
        show(form, e.message, true);
      } finally {
        button.disabled = false;
      }
    });
  }
  // Live updates of a campaign's overview: the server says when a visit
  // in scope was stored anew, and the page redraws its main part.
  function listen() {
    const live = document.querySelector('[data-events]');
    if (!live || !window.EventSource) return;
    const source = new EventSource(live.dataset.events);
    source.addEventListener('update', async () => {
      try {
        const r = await fetch(location.href, { credentials: 'same-origin' });
        if (!r.ok) return;
        const page = new DOMParser().parseFromString(await r.text(), 'text/html');
        const main = page.querySelector('main');
        if (!main) return;
        source.close();
        document.querySelector('main').replaceWith(main);
        const note = document.querySelector('[data-events] .live');
        if (note) {
          note.textContent = say('Đã cập nhật lúc ', 'Updated at ')
            + new Date().toLocaleTimeString(vi ? 'vi-VN' : 'en-GB');
        }
        body.dataset.updates = String(Number(body.dataset.updates || 0) + 1);
        listen();
      } catch (_) { /* the next update tries again */ }
    });
  }
  listen();
  body.dataset.ready = 'yes';
})();
