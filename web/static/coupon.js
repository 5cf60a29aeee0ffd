// chatpay coupon page: draws the coupon's redemption QR on the phone.
//
// Each .coupon-qr element carries its coupon's secret. Every time step the
// script computes the step's token (TOTP, RFC 6238: HOTP of the step number,
// HMAC-SHA1, 8 digits, as payments.RedemptionToken) with WebCrypto and draws
// "CP1:<code>:<token>" as a QR code on a canvas. Nothing is fetched, so the
// code keeps changing with no connection; the till accepts a step either
// side of its own, for clocks that are a little off.
(function () {
  'use strict';

  var CLOCK_KEY = 'chatpay-coupon-clock';
  var STALE_MS = 60000;
  var QUIET_MODULES = 4;
  var TICK_MS = 1000;

  // clockOffset is the till's time minus this device's. A page fresh from
  // the server measures it: the server's (the merchant's) time when it drew
  // the page, minus now, off by the page's load time only. A page the service
  // worker kept for offline use was drawn a while ago, which shows as a
  // measure far behind the one remembered from the last fresh page; then the
  // remembered one holds. Without storage the device's own clock is trusted,
  // as phones keep theirs set.
  function clockOffset(renderedAt) {
    var remembered;
    try {
      remembered = JSON.parse(window.localStorage.getItem(CLOCK_KEY) || '{}').offset;
    } catch (e) {
      return 0;
    }
    var measured = renderedAt - Date.now();
    if (typeof remembered === 'number' && measured < remembered - STALE_MS) {
      return remembered;
    }
    try {
      window.localStorage.setItem(CLOCK_KEY, JSON.stringify({ offset: measured }));
    } catch (e) {
      return 0;
    }
    return measured;
  }

  function base64Bytes(text) {
    var raw = window.atob(text);
    var bytes = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) {
      bytes[i] = raw.charCodeAt(i);
    }
    return bytes;
  }

  // hotp is RFC 4226's HOTP of counter with dynamic truncation to digits.
  function hotp(key, counter, digits) {
    var message = new DataView(new ArrayBuffer(8));
    message.setUint32(0, Math.floor(counter / 4294967296));
    message.setUint32(4, counter >>> 0);
    return window.crypto.subtle.sign('HMAC', key, message.buffer).then(function (signature) {
      var mac = new Uint8Array(signature);
      var offset = mac[mac.length - 1] & 0x0f;
      var value = ((mac[offset] & 0x7f) * 16777216) + (mac[offset + 1] << 16) + (mac[offset + 2] << 8) + mac[offset + 3];
      var token = String(value % Math.pow(10, digits));
      while (token.length < digits) {
        token = '0' + token;
      }
      return token;
    });
  }

  function draw(canvas, content, sizePx) {
    var qr = window.qrcode(0, 'M');
    qr.addData(content);
    qr.make();
    var modules = qr.getModuleCount();
    var total = modules + 2 * QUIET_MODULES;
    var scale = Math.max(1, Math.floor((sizePx * (window.devicePixelRatio || 1)) / total));
    canvas.width = canvas.height = total * scale;
    var ctx = canvas.getContext('2d');
    ctx.fillStyle = '#fff';
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    ctx.fillStyle = '#000';
    for (var row = 0; row < modules; row++) {
      for (var col = 0; col < modules; col++) {
        if (qr.isDark(row, col)) {
          ctx.fillRect((col + QUIET_MODULES) * scale, (row + QUIET_MODULES) * scale, scale, scale);
        }
      }
    }
  }

  // showFallback says, under the server's QR, that it is good for a minute
  // only: this browser cannot compute the next ones (no WebCrypto, say on a
  // page not served over HTTPS).
  function showFallback(box) {
    box.dataset.failed = 'true';
    var card = box.closest('.coupon');
    var note = card && card.querySelector('.qr-fallback');
    if (note) {
      note.hidden = false;
    }
  }

  function start(box) {
    var data = box.dataset;
    var stepMs = Number(data.stepSeconds) * 1000;
    var digits = Number(data.digits);
    var sizePx = Number(data.sizePx);
    var offset = clockOffset(Number(data.renderedAt));
    var canvas = document.createElement('canvas');
    canvas.setAttribute('role', 'img');
    canvas.setAttribute('aria-label', data.label);
    canvas.className = 'coupon-canvas';
    var shownStep = null;
    var keyPromise = window.crypto.subtle.importKey('raw', base64Bytes(data.secret),
      { name: 'HMAC', hash: 'SHA-1' }, false, ['sign']);

    function tick() {
      var step = Math.floor((Date.now() + offset) / stepMs);
      if (step === shownStep) {
        return;
      }
      shownStep = step;
      keyPromise.then(function (key) {
        return hotp(key, step, digits);
      }).then(function (token) {
        if (step !== shownStep) {
          return; // a later step was drawn meanwhile
        }
        var content = data.prefix + data.code + ':' + token;
        draw(canvas, content, sizePx);
        if (!canvas.parentNode) {
          box.textContent = '';
          box.appendChild(canvas);
        }
        // Tests read what was drawn; a person sees the QR only.
        box.dataset.content = content;
        box.dataset.step = String(step);
      }).catch(function () {
        showFallback(box);
      });
    }
    tick();
    window.setInterval(tick, TICK_MS);
  }

  function showConnection() {
    var note = document.getElementById('offline-note');
    if (note) {
      note.hidden = navigator.onLine !== false;
    }
  }

  function registerWorker() {
    var app = document.querySelector('[data-worker]');
    if (app && 'serviceWorker' in navigator) {
      var servedByWorker = Boolean(navigator.serviceWorker.controller);
      navigator.serviceWorker.register(app.dataset.worker, { scope: app.dataset.workerScope }).then(function () {
        return navigator.serviceWorker.ready;
      }).then(function (registration) {
        // The page that installed the worker loaded before it: ask it to
        // keep this page too, or the first visit would not open offline.
        if (!servedByWorker && registration.active) {
          registration.active.postMessage({ keep: window.location.href });
        }
      }).catch(function () {
        // The page still works; it only cannot open offline.
      });
    }
  }

  function init() {
    showConnection();
    window.addEventListener('online', showConnection);
    window.addEventListener('offline', showConnection);
    registerWorker();
    var capable = window.crypto && window.crypto.subtle && window.qrcode;
    var boxes = document.querySelectorAll('.coupon-qr[data-secret]');
    for (var i = 0; i < boxes.length; i++) {
      if (capable) {
        start(boxes[i]);
      } else {
        showFallback(boxes[i]); // the server's QR stays: valid for a minute
      }
    }
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', init);
  } else {
    init();
  }
}());
