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
// The webhook gateway's live log: new and changed entries from the console's relay of Send Engine's stream. Each carries
// the table's columns only; the row's link opens the entry page, which reads headers, body and changes when opened.
(function () {
  'use strict';
  var section = document.querySelector('[data-gateway-stream]');
  if (!section || !window.EventSource) { return; }
  var body = section.querySelector('#gateway-events tbody');
  var live = section.querySelector('#gateway-live');
  var source = new EventSource(section.getAttribute('data-gateway-stream'));
  function cell(text) { var td = document.createElement('td'); td.textContent = text; return td; }
  // Entries the stream left out so far (event: skipped).
  var skipped = 0;
  function sampled() { return skipped + ' entries not shown live (more arrived than it shows a second); reload the page for the full list.'; }
  source.addEventListener('entry', function (message) {
    var e;
    try { e = JSON.parse(message.data); } catch (err) { return; }
    var row = document.createElement('tr');
    row.setAttribute('data-entry-id', e.entry_id);
    var when = document.createElement('td');
    var link = document.createElement('a');
    link.href = (body.parentNode.getAttribute('data-entry-base') || '/webhook-gateway/events/') + encodeURIComponent(e.entry_id);
    link.textContent = e.received_at;
    when.appendChild(link);
    row.appendChild(when);
    row.appendChild(cell(e.source));
    row.appendChild(cell(e.verification));
    row.appendChild(cell(String(e.status_code)));
    row.appendChild(cell((e.event_types || []).join(', ')));
    row.appendChild(cell(e.result));
    var old = body.querySelector('tr[data-entry-id="' + e.entry_id + '"]');
    if (old) { body.replaceChild(row, old); } else { body.insertBefore(row, body.firstChild); }
    while (body.rows.length > 1000) { body.deleteRow(body.rows.length - 1); }
    var none = document.getElementById('no-entries');
    if (none) { none.remove(); }
    if (live) { live.textContent = 'Live: last entry ' + e.result + ' (' + e.verification + ').' + (skipped ? ' ' + sampled() : ''); }
  });
  // Send Engine dropped entries this page read too slowly to receive: the table has gaps, the list is complete.
  source.addEventListener('lost', function (message) {
    var n;
    try { n = JSON.parse(message.data).lost_entries; } catch (err) { return; }
    if (live) { live.textContent = 'Live view fell behind: ' + n + ' entries not shown; reload the page for the full list.'; }
  });
  // More entries than the live view shows a second (WebhookGateway__StreamMaxEntriesPerSecond): the rest of the pass
  // was left out of the stream, not of the log.
  source.addEventListener('skipped', function (message) {
    var n;
    try { n = JSON.parse(message.data).skipped_entries; } catch (err) { return; }
    skipped += n;
    if (live) { live.textContent = 'Live: ' + sampled(); }
  });
  source.onerror = function () { if (source.readyState === EventSource.CLOSED && live) { live.textContent = 'Live view ended.'; } };
})();
