// Progressive enhancement only: every page works without this file.
// A send job's live progress: the page names the console's own relay of Send Engine's server-sent events.
(function () {
  'use strict';
  var section = document.querySelector('[data-progress-url]');
  if (!section || !window.EventSource) { return; }
  var live = section.querySelector('[data-live]');
  var source = new EventSource(section.getAttribute('data-progress-url'));
  source.addEventListener('progress', function (message) {
    var data;
    try { data = JSON.parse(message.data); } catch (e) { return; }
    var counts = data.counts || {};
    Object.keys(counts).forEach(function (name) {
      var cell = document.querySelector('[data-count="' + name + '"]');
      if (cell) { cell.textContent = counts[name]; }
    });
    if (typeof data.remaining === 'number') {
      var remaining = document.querySelector('[data-count="remaining"]');
      if (remaining) { remaining.textContent = data.remaining; }
    }
    if (data.status) {
      var status = document.getElementById('job-status');
      if (status) { status.textContent = data.status; }
    }
    if (live) {
      live.textContent = (data.sent_per_second !== undefined ? data.sent_per_second.toFixed(1) + ' sent/s, ' : '')
        + (data.remaining !== undefined ? data.remaining + ' remaining' : '')
        + (data.errors !== undefined ? ', ' + data.errors + ' errors' : '');
    }
    if (data.final) { source.close(); if (live) { live.textContent += ' (finished)'; } }
  });
  source.onerror = function () { if (source.readyState === EventSource.CLOSED && live) { live.textContent = 'Live view ended.'; } };
})();
