/*
 * ChargeDesk's Freshdesk app: the agent panel in the ticket sidebar.
 *
 * The front end knows who is logged in and which ticket is open (Freshworks data
 * methods). It asks the app's serverless function (server/server.js) to sign a panel
 * URL for them, then loads that URL in the iframe. The secret stays on the server side:
 * it is a secure installation parameter, never sent to the browser.
 */
(function () {
  'use strict';

  function show(text) {
    document.getElementById('status').textContent = text;
  }

  function field(value) {
    return typeof value === 'string' || typeof value === 'number' ? String(value) : '';
  }

  async function openPanel(client) {
    const user = (await client.data.get('loggedInUser')).loggedInUser || {};
    const ticket = (await client.data.get('ticket')).ticket || {};
    const requester = (await client.data.get('requester')).requester || {};
    const contact = user.contact || {};
    const answer = await client.request.invoke('signPanelUrl', {
      agent: field(contact.email),
      name: field(contact.name),
      ticket: field(ticket.id),
      requester: field(requester.email),
      locale: field(contact.language)
    });
    const panel = document.getElementById('panel');
    panel.src = answer.response.url;
    panel.hidden = false;
    document.getElementById('status').hidden = true;
  }

  app.initialized().then(function (client) {
    client.events.on('app.activated', function () {
      openPanel(client).catch(function () {
        show('The billing panel could not be opened. Check the app settings.');
      });
    });
  });
})();
