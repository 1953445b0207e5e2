/* app.js -- the status page's script: polls the JSON API (/api/v1), draws the timelines
 * and histograms into SVG, fills the tables, and routes between the overview and the page
 * of one batch (#batch/<time>, or /batch?time=<time>). No framework, nothing downloaded. */
(function () {
    'use strict';

    var MAX_BATCHES = 1000;
    var TABLE_ROWS = 100;
    var SVGNS = 'http://www.w3.org/2000/svg';

    /* ---- the token: from ?token= (the page itself needs it too, so it stays in the
     * address; the server sends no Referer with it) ---- */
    var token = new URLSearchParams(location.search).get('token');

    var S = {
        status: null,
        batches: [], /* completed, newest first */
        newest: null,
        startTime: undefined,
        inputs: [],
        sinks: [],
        pending: [],
        batch: null, /* the batch page's data */
        batchStatus: 0,
        showAll: false,
        view: 'overview',
        batchTime: null,
        timer: null,
        inFlight: false,
        again: false
    };

    /* ---- small helpers ---- */

    function $(id) {
        return document.getElementById(id);
    }

    function pad(n, w) {
        var s = String(n);
        while (s.length < (w || 2)) {
            s = '0' + s;
        }
        return s;
    }

    function fmtTime(ms, withMs) {
        if (ms === null || ms === undefined) {
            return '–';
        }
        var d = new Date(ms);
        var s = d.getFullYear() + '/' + pad(d.getMonth() + 1) + '/' + pad(d.getDate()) + ' ' +
            pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds());
        return withMs ? s + '.' + pad(d.getMilliseconds(), 3) : s;
    }

    function fmtClock(ms) {
        var d = new Date(ms);
        return pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds());
    }

    function batchTimeText(ms) {
        var iv = S.status ? S.status.batch_interval_ms : 1000;
        return fmtTime(ms, iv % 1000 !== 0);
    }

    function trim1(x) {
        var s = x.toFixed(1);
        return s.slice(-2) === '.0' ? s.slice(0, -2) : s;
    }

    /* A duration in ms as Spark writes it: 12 ms, 1.5 s, 2.3 min, 1.2 h. */
    function fmtDur(ms) {
        if (ms === null || ms === undefined || isNaN(ms)) {
            return '–';
        }
        if (ms < 10 && ms !== Math.round(ms)) {
            return trim1(ms) + ' ms';
        }
        if (ms < 1000) {
            return Math.round(ms) + ' ms';
        }
        if (ms < 60000) {
            return trim1(ms / 1000) + ' s';
        }
        if (ms < 3600000) {
            return trim1(ms / 60000) + ' min';
        }
        return trim1(ms / 3600000) + ' h';
    }

    /* A long span in words: "3 minutes 20 seconds". */
    function fmtSpan(ms) {
        var s = Math.max(0, Math.floor(ms / 1000));
        var parts = [];
        var units = [[86400, 'day'], [3600, 'hour'], [60, 'minute'], [1, 'second']];
        for (var i = 0; i < units.length && parts.length < 2; i++) {
            var n = Math.floor(s / units[i][0]);
            if (n > 0 || (units[i][0] === 1 && parts.length === 0)) {
                parts.push(n + ' ' + units[i][1] + (n === 1 ? '' : 's'));
                s -= n * units[i][0];
            }
        }
        return parts.join(' ');
    }

    function fmtInterval(ms) {
        if (ms % 1000 === 0) {
            var s = ms / 1000;
            return s === 1 ? '1 second' : s + ' seconds';
        }
        return ms + ' ms';
    }

    function fmtInt(n) {
        return n === null || n === undefined ? '–' : Number(n).toLocaleString('en-US');
    }

    function fmtRate(r) {
        if (r === null || r === undefined) {
            return '–';
        }
        if (r >= 100000) {
            return trim1(r / 1000) + 'k';
        }
        return r >= 100 ? Math.round(r).toLocaleString('en-US') : trim1(r);
    }

    function rateShort(r) {
        if (r >= 1e6) {
            return trim1(r / 1e6) + 'M';
        }
        if (r >= 1e3) {
            return trim1(r / 1e3) + 'k';
        }
        return trim1(r);
    }

    function node(tag, attrs, parent, text) {
        var e = document.createElement(tag);
        for (var k in attrs || {}) {
            if (k === 'class') {
                e.className = attrs[k];
            } else {
                e.setAttribute(k, attrs[k]);
            }
        }
        if (text !== undefined && text !== null) {
            e.textContent = text;
        }
        if (parent) {
            parent.appendChild(e);
        }
        return e;
    }

    function svgNode(tag, attrs, parent, text) {
        var e = document.createElementNS(SVGNS, tag);
        for (var k in attrs || {}) {
            e.setAttribute(k, attrs[k]);
        }
        if (text !== undefined) {
            e.textContent = text;
        }
        if (parent) {
            parent.appendChild(e);
        }
        return e;
    }

    function clear(e) {
        while (e.firstChild) {
            e.removeChild(e.firstChild);
        }
    }

    function batchLink(t, parent) {
        var a = node('a', {href: '#batch/' + t}, parent, batchTimeText(t));
        return a;
    }

    function pill(text, kind, parent) {
        return node('span', {class: 'pill ' + kind}, parent, text);
    }

    function progress(ok, total, parent) {
        var p = node('div', {class: 'progress'}, parent);
        var done = node('div', {class: 'done' + (ok < total ? ' failed' : '')}, p);
        done.style.width = (total ? Math.round(100 * Math.max(ok, 0) / total) : 100) + '%';
        node('span', null, p, ok + '/' + total + (ok < total ? ' (' + (total - ok) + ' failed)' : ''));
        return p;
    }

    /* ---- the API ---- */

    function api(path) {
        var headers = token ? {Authorization: 'Bearer ' + token} : {};
        return fetch(path, {headers: headers, cache: 'no-store'}).then(function (res) {
            if (res.status === 401) {
                var e = new Error('unauthorized');
                e.status = 401;
                throw e;
            }
            if (!res.ok && res.status !== 404) {
                throw new Error(path + ': HTTP ' + res.status);
            }
            return res.json().then(function (body) {
                return {status: res.status, body: body};
            });
        });
    }

    function period() {
        var iv = S.status ? S.status.batch_interval_ms : 1000;
        return Math.min(Math.max(iv, 1000), 5000);
    }

    function schedule(ms) {
        clearTimeout(S.timer);
        S.timer = setTimeout(refresh, ms);
    }

    function refresh() {
        if (S.inFlight) {
            S.again = true;
            return;
        }
        S.again = false;
        S.inFlight = true;
        var since = S.newest !== null ? '&since=' + S.newest : '';
        var calls = [
            api('/api/v1/status'),
            api('/api/v1/inputs'),
            api('/api/v1/sinks'),
            api('/api/v1/batches?status=pending&limit=1000'),
            api('/api/v1/batches?limit=1000' + since)
        ];
        if (S.view === 'batch' && S.batchTime !== null) {
            calls.push(api('/api/v1/batches/' + encodeURIComponent(S.batchTime)));
        }
        Promise.all(calls).then(function (r) {
            var st = r[0].body;
            if (S.startTime !== undefined && S.startTime !== st.start_time) {
                /* Restarted: forget what came before and fetch everything again. */
                S.batches = [];
                S.newest = null;
                S.startTime = st.start_time;
                S.inFlight = false;
                schedule(0);
                return;
            }
            S.startTime = st.start_time;
            S.status = st;
            S.inputs = r[1].body;
            S.sinks = r[2].body;
            S.pending = r[3].body;
            var fresh = r[4].body;
            if (fresh.length) {
                S.batches = fresh.concat(S.batches).slice(0, MAX_BATCHES);
                S.newest = S.batches[0].batch_time;
            }
            if (r[5]) {
                S.batch = r[5].body;
                S.batchStatus = r[5].status;
            }
            setLive(true);
            render();
            S.inFlight = false;
            schedule(S.again ? 0 : period());
        }).catch(function (e) {
            S.inFlight = false;
            setLive(false, e);
            schedule(e && e.status === 401 ? 5000 : period());
        });
    }

    function setLive(ok, err) {
        var live = $('live');
        live.className = 'live ' + (ok ? 'ok' : 'down');
        var banner = $('banner');
        if (ok) {
            $('live-text').textContent = 'live · ' + fmtClock(Date.now());
            banner.hidden = true;
        } else if (err && err.status === 401) {
            $('live-text').textContent = 'unauthorized';
            banner.hidden = false;
            banner.textContent = 'This server needs a token: open the page as /?token=YOUR_TOKEN.';
        } else {
            $('live-text').textContent = 'disconnected · retrying';
            banner.hidden = false;
            banner.textContent = 'Cannot reach sluice (' + (err && err.message ? err.message :
                'no answer') + '). The data below is from ' + (S.status ?
                fmtClock(S.status.now) : 'nowhere yet') + '.';
        }
    }

    /* ---- charts ---- */

    /* Round tick steps: 1, 2, 2.5, 5 times a power of ten, and at least minStep. */
    function niceScale(max, n, minStep) {
        minStep = minStep || 0;
        if (!(max > 0)) {
            max = minStep ? minStep * n : 1;
        }
        var raw = Math.max(max / n, minStep);
        var mag = Math.pow(10, Math.floor(Math.log10(raw)));
        var steps = [1, 2, 2.5, 5, 10];
        var step = mag;
        for (var i = 0; i < steps.length; i++) {
            if (steps[i] * mag >= raw) {
                step = steps[i] * mag;
                break;
            }
        }
        var top = Math.ceil(max / step) * step;
        var ticks = [];
        for (var v = 0; v <= top + step / 2; v += step) {
            ticks.push(v);
        }
        return {max: top, ticks: ticks};
    }

    var tooltip = null;

    function showTip(evt, lines) {
        tooltip = tooltip || $('tooltip');
        clear(tooltip);
        lines.forEach(function (l, i) {
            node('div', i === 0 ? {style: 'font-weight:600'} : null, tooltip, l);
        });
        tooltip.hidden = false;
        var x = evt.clientX + 14, y = evt.clientY + 12;
        var w = tooltip.offsetWidth;
        if (x + w > window.innerWidth - 8) {
            x = evt.clientX - w - 14;
        }
        tooltip.style.left = x + 'px';
        tooltip.style.top = y + 'px';
    }

    function hideTip() {
        if (tooltip) {
            tooltip.hidden = true;
        }
    }

    var M = {l: 62, r: 14, t: 10, b: 24};

    /* A timeline: pts [{t, v}] oldest first, scale from niceScale, fmt formats a value. */
    function drawTimeline(svg, pts, scale, fmt, avg, unit) {
        clear(svg);
        var W = Math.max(svg.clientWidth || 600, 200), H = svg.clientHeight || 150;
        svg.setAttribute('viewBox', '0 0 ' + W + ' ' + H);
        var w = W - M.l - M.r, h = H - M.t - M.b;
        var g = svgNode('g', {transform: 'translate(' + M.l + ',' + M.t + ')'}, svg);
        var Y = function (v) {
            return h - Math.min(v, scale.max) / scale.max * h;
        };
        var grid = svgNode('g', {class: 'grid'}, g);
        var axis = svgNode('g', {class: 'axis'}, g);
        scale.ticks.forEach(function (v) {
            svgNode('line', {x1: 0, x2: w, y1: Y(v), y2: Y(v)}, grid);
            svgNode('text', {x: -7, y: Y(v) + 3.5, 'text-anchor': 'end'}, axis, fmt(v));
        });
        svgNode('path', {d: 'M0,0 V' + h + ' H' + w}, axis);
        if (!pts.length) {
            svgNode('text', {x: w / 2, y: h / 2, 'text-anchor': 'middle', class: 'empty'}, g,
                'No completed batch yet');
            return;
        }
        var t0 = pts[0].t, t1 = pts[pts.length - 1].t;
        var X = function (t) {
            return t1 > t0 ? (t - t0) / (t1 - t0) * w : w / 2;
        };
        var nx = Math.min(5, pts.length);
        var tenths = S.status && S.status.batch_interval_ms % 1000 !== 0;
        var prevLabel = null;
        for (var i = 0; i < nx; i++) {
            var tt = nx === 1 ? t0 : t0 + (t1 - t0) * i / (nx - 1);
            var label = fmtClock(tt) + (tenths ? '.' + Math.floor(new Date(tt).getMilliseconds() /
                100) : '');
            if (label === prevLabel) {
                continue;
            }
            prevLabel = label;
            var anchor = nx === 1 ? 'middle' : i === 0 ? 'start' : i === nx - 1 ? 'end' : 'middle';
            svgNode('line', {x1: X(tt), x2: X(tt), y1: h, y2: h + 4}, axis);
            svgNode('text', {x: X(tt), y: h + 16, 'text-anchor': anchor}, axis, label);
        }
        var coords = pts.map(function (p) {
            return X(p.t).toFixed(1) + ',' + Y(p.v).toFixed(1);
        });
        svgNode('path', {class: 'area', d: 'M' + X(t0).toFixed(1) + ',' + h + ' L' +
            coords.join(' L') + ' L' + X(t1).toFixed(1) + ',' + h + ' Z'}, g);
        svgNode('polyline', {class: 'line', points: coords.join(' ')}, g);
        var r = pts.length <= 120 ? 2.6 : pts.length <= 300 ? 1.7 : 0;
        if (r) {
            var dots = svgNode('g', {class: 'pts'}, g);
            pts.forEach(function (p) {
                svgNode('circle', {class: 'pt', cx: X(p.t).toFixed(1), cy: Y(p.v).toFixed(1), r: r},
                    dots);
            });
        }
        var last = pts[pts.length - 1];
        svgNode('circle', {class: 'pt last', cx: X(last.t).toFixed(1), cy: Y(last.v).toFixed(1),
            r: 3.6}, g);
        if (avg !== null && avg !== undefined) {
            svgNode('line', {class: 'avg', x1: 0, x2: w, y1: Y(avg), y2: Y(avg)}, g);
            svgNode('text', {class: 'avg-label', x: w - 2, y: Math.max(Y(avg) - 4, 9),
                'text-anchor': 'end'}, g, 'avg ' + fmt(avg));
        }
        var hover = svgNode('circle', {class: 'hover', r: 5, cx: 0, cy: 0, visibility: 'hidden'}, g);
        var overlay = svgNode('rect', {class: 'overlay', x: 0, y: 0, width: w, height: h}, g);
        var nearest = function (evt) {
            var box = overlay.getBoundingClientRect();
            var px = (evt.clientX - box.left) / box.width * w;
            var lo = 0, hi = pts.length - 1;
            while (lo < hi) {
                var mid = (lo + hi) >> 1;
                if (X(pts[mid].t) < px) {
                    lo = mid + 1;
                } else {
                    hi = mid;
                }
            }
            if (lo > 0 && Math.abs(X(pts[lo - 1].t) - px) < Math.abs(X(pts[lo].t) - px)) {
                lo--;
            }
            return pts[lo];
        };
        overlay.addEventListener('mousemove', function (evt) {
            var p = nearest(evt);
            hover.setAttribute('cx', X(p.t));
            hover.setAttribute('cy', Y(p.v));
            hover.setAttribute('visibility', 'visible');
            showTip(evt, [batchTimeText(p.t), fmt(p.v) + (unit ? ' ' + unit : '')]);
        });
        overlay.addEventListener('mouseleave', function () {
            hover.setAttribute('visibility', 'hidden');
            hideTip();
        });
        overlay.addEventListener('click', function (evt) {
            hideTip();
            location.hash = '#batch/' + nearest(evt).t;
        });
    }

    /* A histogram of values in bins along the same value axis as the timeline, bars
     * growing to the right with the number of batches. */
    function drawHistogram(svg, values, scale, fmt) {
        clear(svg);
        var W = Math.max(svg.clientWidth || 300, 160), H = svg.clientHeight || 150;
        svg.setAttribute('viewBox', '0 0 ' + W + ' ' + H);
        var m = {l: 10, r: 30, t: M.t, b: M.b};
        var w = W - m.l - m.r, h = H - m.t - m.b;
        var g = svgNode('g', {transform: 'translate(' + m.l + ',' + m.t + ')'}, svg);
        var axis = svgNode('g', {class: 'axis'}, g);
        svgNode('path', {d: 'M0,0 V' + h + ' H' + w}, axis);
        if (!values.length) {
            svgNode('text', {x: w / 2, y: h / 2, 'text-anchor': 'middle', class: 'empty'}, g,
                'No data');
            return;
        }
        var nb = 10;
        var counts = [];
        for (var i = 0; i < nb; i++) {
            counts.push(0);
        }
        values.forEach(function (v) {
            var b = Math.floor(Math.min(v, scale.max) / scale.max * nb);
            counts[Math.min(Math.max(b, 0), nb - 1)]++;
        });
        var cmax = Math.max.apply(null, counts);
        var bh = h / nb;
        counts.forEach(function (c, i) {
            var y = h - (i + 1) * bh;
            var bw = cmax ? c / cmax * w : 0;
            var rect = svgNode('rect', {class: 'bar', x: 0, y: y + 1, width: Math.max(bw, c ? 1 : 0),
                height: Math.max(bh - 2, 1)}, g);
            var lo = scale.max * i / nb, hi = scale.max * (i + 1) / nb;
            rect.addEventListener('mousemove', function (evt) {
                showTip(evt, [fmt(lo) + ' – ' + fmt(hi), c + ' batch' + (c === 1 ? '' : 'es') +
                    ' (' + Math.round(100 * c / values.length) + '%)']);
            });
            rect.addEventListener('mouseleave', hideTip);
            if (c) {
                svgNode('text', {class: 'bar-label', x: bw + 4, y: y + bh / 2 + 3.5}, g, String(c));
            }
        });
        svgNode('text', {x: w, y: h + 16, 'text-anchor': 'end'}, axis, '#batches');
        svgNode('text', {x: 0, y: h + 16, 'text-anchor': 'start'}, axis, '0');
    }

    function average(vals) {
        if (!vals.length) {
            return null;
        }
        var s = 0;
        vals.forEach(function (v) {
            s += v;
        });
        return s / vals.length;
    }

    function drawMetric(key, field, fmt, unit, avgText, minStep) {
        var pts = [];
        for (var i = S.batches.length - 1; i >= 0; i--) {
            var b = S.batches[i];
            var v = b[field];
            if (v !== null && v !== undefined) {
                pts.push({t: b.batch_time, v: v});
            }
        }
        var vals = pts.map(function (p) {
            return p.v;
        });
        var avg = average(vals);
        var scale = niceScale(vals.length ? Math.max.apply(null, vals) : 0, 4, minStep);
        drawTimeline($('timeline-' + key), pts, scale, fmt, avg, unit);
        drawHistogram($('hist-' + key), vals, scale, fmt);
        $('avg-' + key).textContent = avg === null ? 'Avg: –' : 'Avg: ' + avgText(avg);
    }

    /* ---- the overview ---- */

    function renderSummary() {
        var st = S.status;
        var el = $('summary');
        clear(el);
        var add = function (t, strong, id) {
            if (strong) {
                node('strong', id ? {id: id} : null, el, t);
            } else {
                el.appendChild(document.createTextNode(t));
            }
        };
        var iv = fmtInterval(st.batch_interval_ms);
        if (!st.start_time) {
            add('Not started yet: batches of ');
            add(iv, true);
            add(' (');
            add(fmtInt(st.batches_completed), true, 'completed-count');
            add(' completed batches).');
            return;
        }
        var running = st.state === 'running';
        add(running ? 'Running batches of ' : 'Ran batches of ');
        add(iv, true);
        add(' for ');
        add(fmtSpan(st.uptime_ms), true);
        add(' since ');
        add(fmtTime(st.start_time), true);
        add(' (');
        add(fmtInt(st.batches_completed), true, 'completed-count');
        add(' completed batches, ');
        add(fmtInt(st.records_processed), true, 'records-count');
        add(' records)' + (running ? '' : ' — the pipeline is ' + st.state));
        if (running && st.phase && st.phase !== 'running') {
            add(' — ');
            add(st.phase, true, 'phase');
        }
        add('.');
        if (st.records_failed) {
            add(' ');
            add(fmtInt(st.records_failed) + ' records were rejected (by operators, sources or sinks).', true);
        }
    }

    /* Keyed state restored from changelogs: shown while tasks are restored, then quietly. */
    function renderRestore() {
        var r = S.status.restore;
        var el = $('restore');
        el.hidden = !r || (!r.restoring && !r.tasks);
        if (el.hidden) {
            return;
        }
        var now = r.restoring > 0;
        var n = now ? r.restoring : r.tasks;
        el.className = 'restore' + (now ? ' active' : '');
        el.textContent = (now ? 'Restoring state: ' : 'Restored state: ') + fmtInt(n) + ' task' +
            (n === 1 ? '' : 's') + ', ' + fmtInt(r.records) + ' records, ' +
            trim1(r.bytes / 1e6) + ' MB' + (now ? '' : ' in ' + fmtDur(r.ms)) + ' at ' +
            trim1(r.mb_per_s) + ' MB/s';
    }

    /* Windows on event time: each stream's watermark, how far behind the clock, late records. */
    function renderEventTime() {
        var et = S.status.event_time || [];
        var el = $('event-time');
        el.hidden = et.length === 0;
        el.textContent = et.map(function (e) {
            return 'Event time of ' + e.stream + ': ' + (e.watermark === null
                ? 'no record time yet'
                : 'watermark ' + new Date(e.watermark).toISOString() + ' (' + fmtDur(e.lag_ms) +
                  ' behind)') + (e.late_records ? ', ' + fmtInt(e.late_records) +
                  ' late records left out' : '');
        }).join('; ');
    }

    function renderCharts() {
        var st = S.status;
        $('timeline-title').textContent = 'Timelines (last ' + S.batches.length + ' batch' +
            (S.batches.length === 1 ? '' : 'es') + ', ' + st.receivers_active + ' active receiver' +
            (st.receivers_active === 1 ? '' : 's') + ', ' + st.inputs_active + '/' + st.inputs +
            ' active input' + (st.inputs === 1 ? '' : 's') + ')';
        drawMetric('rate', 'input_rate', rateShort, 'records/s', function (a) {
            return fmtRate(a) + ' records/s';
        });
        drawMetric('sched', 'scheduling_delay_ms', fmtDur, '', fmtDur, 1);
        drawMetric('proc', 'processing_time_ms', fmtDur, '', fmtDur, 1);
        drawMetric('total', 'total_delay_ms', fmtDur, '', fmtDur, 1);
        var ul = $('rate-inputs');
        clear(ul);
        S.inputs.forEach(function (i) {
            var li = node('li', {title: i.name + ': ' + fmtRate(i.avg_rate) + ' records/s'}, ul);
            node('span', null, li, i.name + ': ' + fmtRate(i.avg_rate) + ' records/s');
        });
    }

    function emptyRow(tbody, cols, text) {
        var tr = node('tr', null, tbody);
        node('td', {class: 'empty-row', colspan: cols}, tr, text);
    }

    function errorCells(tr, e) {
        node('td', {class: 'time'}, tr, e ? fmtTime(e.time) : '–');
        node('td', {class: e ? 'err' : ''}, tr, e ? e.message : '');
    }

    function renderInputs() {
        var tb = $('inputs-table').tBodies[0];
        clear(tb);
        $('inputs-title').textContent = 'Inputs (' + S.inputs.length + ')';
        if (!S.inputs.length) {
            emptyRow(tb, 9, 'No input.');
        }
        S.inputs.forEach(function (i) {
            var tr = node('tr', {'data-input': i.name}, tb);
            node('td', null, tr, i.name);
            node('td', null, tr, i.type + (i.receiver ? ' (receiver)' : ''));
            var td = node('td', null, tr);
            pill(i.active ? 'ACTIVE' : 'INACTIVE', i.active ? 'ok' : 'bad', td);
            if (i.waiting) {
                pill('WAITING FOR PARTITIONS', 'warn', td);
            }
            node('td', {class: 'num'}, tr, fmtRate(i.avg_rate) + ' records/s');
            node('td', {class: 'num', title: i.estimated_rate ? 'backpressure estimate: ' +
                fmtRate(i.estimated_rate) + ' records/s' : 'no backpressure estimate yet'}, tr,
                i.rate_limit ? fmtRate(i.rate_limit) + ' records/s' : 'none');
            node('td', {class: 'num'}, tr, fmtInt(i.records));
            node('td', {class: 'num'}, tr, fmtInt(i.records_oversize));
            errorCells(tr, i.last_error);
        });
    }

    function renderSinks(table, withTimes) {
        var tb = table.tBodies[0];
        clear(tb);
        if (!S.sinks.length) {
            emptyRow(tb, 6, 'No sink.');
        }
        S.sinks.forEach(function (s) {
            var tr = node('tr', {'data-sink': s.name}, tb);
            node('td', null, tr, s.name);
            node('td', null, tr, s.type);
            var kind = s.state === 'ok' ? 'ok' : s.state === 'failing' ? 'bad' : 'idle';
            pill(s.state.toUpperCase(), kind, node('td', null, tr));
            node('td', {class: 'num'}, tr, fmtInt(s.records));
            if (withTimes) {
                errorCells(tr, s.last_error);
            } else {
                node('td', {class: s.last_error ? 'err' : ''}, tr,
                    s.last_error ? fmtTime(s.last_error.time) + ': ' + s.last_error.message : '');
            }
        });
    }

    function renderBatchTables() {
        var now = S.status.now;
        var running = S.pending.filter(function (b) {
            return b.status === 'running';
        });
        var waiting = S.pending.filter(function (b) {
            return b.status === 'waiting';
        });
        $('running-title').textContent = 'Running Batches (' + running.length + ')';
        $('waiting-title').textContent = 'Waiting Batches (' + waiting.length + ')';

        var tb = $('running-table').tBodies[0];
        clear(tb);
        if (!running.length) {
            emptyRow(tb, 6, 'No batch is running.');
        }
        running.forEach(function (b) {
            var tr = node('tr', null, tb);
            batchLink(b.batch_time, node('td', {class: 'time'}, tr));
            node('td', {class: 'num'}, tr, fmtInt(b.records));
            node('td', {class: 'num'}, tr, fmtDur(b.scheduling_delay_ms));
            node('td', {class: 'num'}, tr, fmtDur(Math.max(now - b.processing_start, 0)) + ' so far');
            progress(b.outputs_succeeded, b.outputs_total, node('td', null, tr));
            node('td', {class: b.error ? 'err' : ''}, tr, b.error || '');
        });

        tb = $('waiting-table').tBodies[0];
        clear(tb);
        if (!waiting.length) {
            emptyRow(tb, 4, 'No batch is waiting.');
        }
        waiting.forEach(function (b) {
            var tr = node('tr', null, tb);
            batchLink(b.batch_time, node('td', {class: 'time'}, tr));
            node('td', {class: 'num'}, tr, fmtInt(b.records));
            node('td', {class: 'num'}, tr, fmtDur(Math.max(now - b.submission_time, 0)));
            progress(0, b.outputs_total, node('td', null, tr));
        });

        var shown = S.showAll ? S.batches : S.batches.slice(0, TABLE_ROWS);
        $('completed-title').textContent = 'Completed Batches (last ' + shown.length + ' out of ' +
            fmtInt(S.status.batches_completed) + ')';
        tb = $('completed-table').tBodies[0];
        clear(tb);
        if (!shown.length) {
            emptyRow(tb, 7, 'No batch has completed yet.');
        }
        shown.forEach(function (b) {
            var tr = node('tr', {'data-batch': b.batch_time}, tb);
            batchLink(b.batch_time, node('td', {class: 'time'}, tr));
            node('td', {class: 'num'}, tr, fmtInt(b.records));
            node('td', {class: 'num'}, tr, fmtDur(b.scheduling_delay_ms));
            node('td', {class: 'num'}, tr, fmtDur(b.processing_time_ms));
            node('td', {class: 'num'}, tr, fmtDur(b.total_delay_ms));
            progress(b.outputs_succeeded, b.outputs_total, node('td', null, tr));
            node('td', {class: b.error ? 'err' : ''}, tr, b.error || '');
        });
        var btn = $('show-all');
        btn.hidden = S.batches.length <= TABLE_ROWS;
        btn.textContent = S.showAll ? 'Show the last ' + TABLE_ROWS : 'Show all ' +
            S.batches.length;
    }

    /* ---- the batch page ---- */

    function kv(dl, k, v) {
        node('dt', null, dl, k);
        node('dd', null, dl, v);
    }

    function renderBatch() {
        $('b-time').textContent = S.batchTime !== null ? batchTimeText(Number(S.batchTime)) : '';
        document.title = 'Batch ' + $('b-time').textContent + ' · sluice';
        var missing = $('b-missing');
        var body = $('b-body');
        if (!S.batch || S.batchStatus === 404) {
            missing.hidden = false;
            missing.textContent = S.batch && S.batch.error ? 'Unknown batch: ' + S.batch.error +
                ' (only the last 1000 batches are kept).' : 'Loading…';
            body.hidden = true;
            return;
        }
        missing.hidden = true;
        body.hidden = false;
        var b = S.batch;
        var dl = $('b-kv');
        clear(dl);
        kv(dl, 'Status', b.status);
        kv(dl, 'Batch duration', fmtInterval(S.status.batch_interval_ms));
        kv(dl, 'Input size', fmtInt(b.records) + ' records (' + fmtRate(b.input_rate) +
            ' records/s)');
        kv(dl, 'Submitted', fmtTime(b.submission_time, true));
        kv(dl, 'Processing started', fmtTime(b.processing_start, true));
        kv(dl, 'Processing ended', fmtTime(b.processing_end, true));
        kv(dl, 'Scheduling delay', fmtDur(b.scheduling_delay_ms));
        kv(dl, 'Processing time', fmtDur(b.processing_time_ms));
        kv(dl, 'Total delay', fmtDur(b.total_delay_ms));
        kv(dl, 'Output operations', b.outputs_succeeded + '/' + b.outputs_total + ' succeeded');
        kv(dl, 'Records rejected (operators, sources, sinks)', fmtInt(b.failed_records));
        var eb = $('b-error');
        eb.hidden = !b.error;
        eb.textContent = b.error ? 'Error: ' + b.error : '';

        var tb = $('b-inputs').tBodies[0];
        clear(tb);
        if (!b.inputs.length) {
            emptyRow(tb, 4, 'No input.');
        }
        b.inputs.forEach(function (i) {
            var tr = node('tr', null, tb);
            node('td', null, tr, i.name);
            node('td', {class: 'num'}, tr, fmtInt(i.records));
            node('td', {class: 'num'}, tr, i.rate_limit ? fmtRate(i.rate_limit) + ' records/s' :
                'none');
            node('td', null, tr).appendChild(node('code', null, null, i.description || '–'));
        });

        tb = $('b-outputs').tBodies[0];
        clear(tb);
        var tr = node('tr', null, tb);
        node('td', null, tr, 'All outputs of the batch');
        progress(b.outputs_succeeded, b.outputs_total, node('td', null, tr));
        node('td', {class: 'num'}, tr, fmtInt(b.failed_records));
        node('td', {class: b.error ? 'err' : ''}, tr, b.error || '');
        renderSinks($('b-sinks'), false);
    }

    /* ---- views ---- */

    function render() {
        if (!S.status) {
            return;
        }
        var st = S.status;
        $('app-name').textContent = st.app;
        $('version').textContent = 'v' + st.version;
        if (S.view === 'batch') {
            renderBatch();
            return;
        }
        document.title = st.app + ' · Streaming · sluice';
        renderSummary();
        renderRestore();
        renderEventTime();
        renderCharts();
        renderInputs();
        renderSinks($('sinks-table'), true);
        $('sinks-title').textContent = 'Sinks (' + S.sinks.length + ')';
        renderBatchTables();
    }

    function route() {
        var m = location.hash.match(/^#batch\/(-?\d+)$/);
        var t = m ? m[1] : null;
        if (t === null && location.pathname === '/batch') {
            t = new URLSearchParams(location.search).get('time');
        }
        var was = S.batchTime;
        S.view = t !== null ? 'batch' : 'overview';
        S.batchTime = t;
        if (was !== t) {
            S.batch = null;
            S.batchStatus = 0;
        }
        $('view-overview').hidden = S.view !== 'overview';
        $('view-batch').hidden = S.view !== 'batch';
        hideTip();
        render();
        window.scrollTo(0, 0);
    }

    function goOverview(evt) {
        evt.preventDefault();
        var q = new URLSearchParams(location.search);
        q.delete('time');
        var s = q.toString();
        var target = '/' + (s ? '?' + s : '');
        if (location.pathname + location.search + location.hash !== target) {
            history.pushState(null, '', target);
        }
        route();
        schedule(0);
    }

    document.querySelectorAll('[data-nav="overview"]').forEach(function (a) {
        a.addEventListener('click', goOverview);
    });
    window.addEventListener('hashchange', function () {
        route();
        schedule(0);
    });
    window.addEventListener('popstate', function () {
        route();
        schedule(0);
    });
    $('show-all').addEventListener('click', function () {
        S.showAll = !S.showAll;
        render();
    });
    var resizeTimer = null;
    window.addEventListener('resize', function () {
        clearTimeout(resizeTimer);
        resizeTimer = setTimeout(render, 150);
    });

    route();
    refresh();
})();
