// chatpay coupon pages' service worker (served at /c/sw.js, scope /c/).
//
// It keeps each coupon page and My coupons the phone has opened, and the two
// scripts that draw the rotating QR, so that a link from the chat opens and
// keeps rotating in a basement with no signal. Pages are network-first: a
// fresh page says if the coupon was used or refunded meanwhile; the kept copy
// answers when the network fails or takes longer than NETWORK_WAIT_MS.
'use strict';

var VERSION = '__VERSION__';
var ASSETS = '__ASSETS__';
var STATIC_CACHE = 'chatpay-coupon-static-' + VERSION;
var PAGE_CACHE = 'chatpay-coupon-pages';
var NETWORK_WAIT_MS = 4000;

self.addEventListener('install', function (event) {
  event.waitUntil(caches.open(STATIC_CACHE).then(function (cache) {
    return cache.addAll(ASSETS);
  }).then(function () {
    return self.skipWaiting();
  }));
});

self.addEventListener('activate', function (event) {
  event.waitUntil(caches.keys().then(function (names) {
    return Promise.all(names.filter(function (name) {
      return name.indexOf('chatpay-coupon-static-') === 0 && name !== STATIC_CACHE;
    }).map(function (name) {
      return caches.delete(name);
    }));
  }).then(function () {
    return self.clients.claim();
  }));
});

function cacheFirst(request) {
  return caches.match(request).then(function (hit) {
    return hit || fetch(request).then(function (response) {
      if (response.ok) {
        var copy = response.clone();
        caches.open(STATIC_CACHE).then(function (cache) {
          cache.put(request, copy);
        });
      }
      return response;
    });
  });
}

function networkFirst(request) {
  return caches.open(PAGE_CACHE).then(function (cache) {
    var network = fetch(request).then(function (response) {
      if (response.ok) {
        cache.put(request, response.clone());
      } else if (response.status === 404) {
        cache.delete(request);
      }
      return response;
    });
    var slow = new Promise(function (resolve) {
      setTimeout(resolve, NETWORK_WAIT_MS);
    }).then(function () {
      return cache.match(request).then(function (hit) {
        return hit || network;
      });
    });
    return Promise.race([network, slow]).catch(function () {
      return cache.match(request).then(function (hit) {
        return hit || Response.error();
      });
    });
  });
}

// A page loaded before the worker asks to be kept (coupon.js).
self.addEventListener('message', function (event) {
  var wanted = event.data && event.data.keep;
  if (typeof wanted !== 'string') {
    return;
  }
  var url = new URL(wanted);
  if (url.origin !== self.location.origin || !inScope(url)) {
    return;
  }
  event.waitUntil(caches.open(PAGE_CACHE).then(function (cache) {
    return cache.add(url.href);
  }));
});

function inScope(url) {
  return url.pathname.indexOf('/c/') === 0 && url.pathname !== '/c/sw.js';
}

self.addEventListener('fetch', function (event) {
  var request = event.request;
  if (request.method !== 'GET') {
    return;
  }
  var url = new URL(request.url);
  if (url.origin !== self.location.origin) {
    return;
  }
  if (url.pathname.indexOf('/static/') === 0) {
    event.respondWith(cacheFirst(request));
  } else if (inScope(url)) {
    event.respondWith(networkFirst(request));
  }
});
