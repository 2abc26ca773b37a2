/*
 * ChargeDesk's Freshdesk app, server side: signs the agent panel URL.
 *
 * The canonical string and the parameters are those of ChargeDesk's bot/panel/links.py,
 * byte for byte (tests/panel/test_entries_freshdesk.py runs this file with node and
 * checks ChargeDesk accepts what it signs):
 *
 *   chargedesk-panel-v1 \n freshdesk \n <exp> \n <nonce> \n
 *   encodeURIComponent(agent) \n encodeURIComponent(name) \n encodeURIComponent(ticket) \n
 *   encodeURIComponent(requester) \n encodeURIComponent(locale)
 *
 * sig = hex HMAC-SHA256 of that string with the secure installation parameter panel_secret.
 * A URL lives LIFETIME seconds and opens the panel once (its nonce).
 */
var crypto = require('crypto');

var LIFETIME = 60;
var FIELDS = ['agent', 'name', 'ticket', 'requester', 'locale'];

// A value as text, control characters (a line break in a name) made spaces: ChargeDesk
// refuses a link that carries any.
function text(value) {
  var found = typeof value === 'string' || typeof value === 'number' ? String(value) : '';
  return found.replace(/[\u0000-\u001f\u007f]+/g, ' ').trim();
}

function canonical(params) {
  var lines = ['chargedesk-panel-v1', 'freshdesk', params.exp, params.nonce];
  FIELDS.forEach(function (name) {
    lines.push(encodeURIComponent(params[name] || ''));
  });
  return lines.join('\n');
}

function sign(secret, params) {
  return crypto.createHmac('sha256', secret).update(canonical(params), 'utf8').digest('hex');
}

function signedUrl(panelUrl, secret, context, now, nonce) {
  var params = {};
  FIELDS.forEach(function (name) {
    var value = text(context[name]);
    if (value) {
      params[name] = value;
    }
  });
  params.exp = String(Math.floor(now / 1000) + LIFETIME);
  params.nonce = nonce || crypto.randomBytes(18).toString('base64')
    .replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  params.sig = sign(secret, params);
  var query = Object.keys(params).map(function (name) {
    return encodeURIComponent(name) + '=' + encodeURIComponent(params[name]);
  }).join('&');
  return panelUrl + (panelUrl.indexOf('?') === -1 ? '?' : '&') + query;
}

exports = {
  // Called by app.js (client.request.invoke('signPanelUrl', {...})).
  signPanelUrl: function (args) {
    var iparams = args.iparams || {};
    if (!iparams.panel_url || !iparams.panel_secret) {
      renderData({ status: 500, message: 'panel_url and panel_secret must be set' });
      return;
    }
    renderData(null, { url: signedUrl(iparams.panel_url, iparams.panel_secret, args, Date.now()) });
  },
  // For ChargeDesk's tests (run under node, outside Freshworks).
  _signedUrl: signedUrl,
  _canonical: canonical
};

if (typeof module !== 'undefined') {
  module.exports = exports;
}
