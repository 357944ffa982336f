// The market report's charts (flower_assets/market/report.py inlines this file in the page).
// Standalone JavaScript, run after the inlined Chart.js: it reads the charts' data from the
// page's <script type="application/json" id="report-data"> block, which holds
//   charts: one spec per canvas: {id, kind (a key of `kinds` below), labels, datasets, ...},
//           each dataset with its category's Korean name (`category`), the key of COLOURS;
//   singleYear: whether the period lies in one year (the date axes then omit the year).
/* global Chart */
(function () {
  'use strict';
  const DATA = JSON.parse(document.getElementById('report-data').textContent);
  // One colour per category, the same in every chart.
  const COLOURS = {'절화': '#c2255c', '관엽': '#2b8a3e', '난': '#6741d9', '춘란': '#d9480f'};
  const OTHER = '#495057';
  const colour = (category) => COLOURS[category] || OTHER;
  const fmt = new Intl.NumberFormat('en-US');
  const dec = new Intl.NumberFormat('en-US', {minimumFractionDigits: 1, maximumFractionDigits: 1});
  // The page's fonts (report.css), so the charts' Korean names render as the tables' do.
  Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
  Chart.defaults.font.size = 12;
  Chart.defaults.color = '#343a40';
  Chart.defaults.animation = false;
  Chart.defaults.maintainAspectRatio = false;
  Chart.defaults.responsive = true;
  const dateTicks = {
    autoSkip: true, autoSkipPadding: 14, maxRotation: 0,
    callback: function (value) {
      const label = this.getLabelForValue(value);
      return DATA.singleYear ? label.slice(5) : label;
    },
  };
  const numberTicks = {callback: (value) => fmt.format(value)};
  function line(ds) {
    const color = colour(ds.category);
    return {label: ds.label, data: ds.data, borderColor: color, backgroundColor: color,
      spanGaps: true, pointRadius: 2.5, pointHoverRadius: 5, borderWidth: 2, tension: 0,
      matched: ds.matched, share: ds.share};
  }
  function bar(ds) {
    const color = colour(ds.category);
    return {label: ds.label, data: ds.data, backgroundColor: color + 'cc',
      borderColor: color, borderWidth: 1, skipNull: true, dates: ds.dates,
      quantity: ds.quantity, unit: ds.unit};
  }
  const kinds = {
    index: (spec) => ({
      type: 'line',
      data: {labels: spec.labels, datasets: spec.datasets.map(line)},
      options: {
        interaction: {mode: 'nearest', axis: 'x', intersect: false},
        scales: {x: {ticks: dateTicks}, y: {title: {display: true, text: 'Index (100 = first date)'},
          ticks: numberTicks}},
        plugins: {tooltip: {callbacks: {
          label: (c) => c.dataset.label + ': ' + dec.format(c.parsed.y),
          afterLabel: (c) => 'matched pairs ' + fmt.format(c.dataset.matched[c.dataIndex]) +
            ', quantity share ' + dec.format(100 * c.dataset.share[c.dataIndex]) + '%',
        }}},
      },
    }),
    weekday: (spec) => ({
      type: 'bar',
      data: {labels: spec.labels, datasets: spec.datasets.map(bar)},
      options: {
        scales: {y: {beginAtZero: true, ticks: numberTicks}},
        plugins: {
          legend: {display: false},
          title: {display: true, text: spec.title},
          tooltip: {callbacks: {
            label: (c) => fmt.format(c.parsed.y) + ' over ' + c.dataset.dates[c.dataIndex] +
              ' auction dates',
            afterLabel: (c) => {
              const n = c.dataset.dates[c.dataIndex];
              return n ? fmt.format(Math.round(c.parsed.y / n)) + ' per auction date' : '';
            },
          }},
        },
      },
    }),
    'season-volume': (spec) => ({
      type: 'bar',
      data: {labels: spec.labels, datasets: spec.datasets.map(bar)},
      options: {
        scales: {x: {ticks: dateTicks}, y: {beginAtZero: true,
          title: {display: true, text: '100 = average day'},
          ticks: numberTicks}},
        plugins: {
          title: {display: true, text: 'Daily quantity'},
          tooltip: {callbacks: {
            label: (c) => c.dataset.label + ': ' + fmt.format(c.dataset.quantity[c.dataIndex]) +
              ' ' + c.dataset.unit + ' (' + dec.format(c.parsed.y) + ')',
          }},
        },
      },
    }),
    'season-index': (spec) => ({
      type: 'line',
      data: {labels: spec.labels, datasets: spec.datasets.map(line)},
      options: {
        interaction: {mode: 'nearest', axis: 'x', intersect: false},
        scales: {x: {ticks: dateTicks}, y: {title: {display: true, text: 'Price index'},
          ticks: numberTicks}},
        plugins: {
          title: {display: true, text: 'Price index'},
          tooltip: {callbacks: {label: (c) => c.dataset.label + ': ' + dec.format(c.parsed.y)}},
        },
      },
    }),
  };
  // Shades the peak's dates (spec.shade: their indices on the category axis) behind the data.
  function shading(spec) {
    return {
      id: 'peakShade',
      beforeDatasetsDraw(chart) {
        const days = spec.shade || [];
        if (!days.length) return;
        const x = chart.scales.x, area = chart.chartArea;
        const step = spec.labels.length > 1 ? x.getPixelForValue(1) - x.getPixelForValue(0) : area.width;
        const left = Math.max(area.left, x.getPixelForValue(days[0]) - step / 2);
        const right = Math.min(area.right, x.getPixelForValue(days[days.length - 1]) + step / 2);
        const ctx = chart.ctx;
        ctx.save();
        ctx.fillStyle = 'rgba(250, 176, 5, 0.16)';
        ctx.fillRect(left, area.top, right - left, area.bottom - area.top);
        ctx.restore();
      },
    };
  }
  for (const spec of DATA.charts) {
    const config = kinds[spec.kind](spec);
    config.plugins = [shading(spec)];
    new Chart(document.getElementById(spec.id), config);
  }
})();
