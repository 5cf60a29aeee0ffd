package main

import "github.com/chatpay/chatpay/internal/httpapi"

// createdLocations is where each creating route's new resource can be read,
// filled from the answer's own fields; the Location header of every 201 (and
// of a top-up's 202, the URL to poll) comes from it.
var createdLocations = httpapi.Locations{
	"/v1/items":                       "/v1/items/{id}",
	"/v1/qr-codes":                    "/v1/qr-codes/{id}",
	"/v1/checkouts":                   "/v1/qr-codes/{qr_code_id}",
	"/v1/channel/checkouts":           "/v1/channel/checkouts/{id}",
	"/v1/channel/shoppers/:id/topups": "/v1/channel/shoppers/{shopper_id}/topups/{id}",
	// A top-up refund is read through its top-up (refunded, status).
	"/v1/channel/shoppers/:id/topups/:topup/refunds": "/v1/channel/shoppers/{shopper_id}/topups/{top_up_id}",
	"/v1/orders/:id/refunds":                         "/v1/orders/{order_id}",
	"/v1/webhooks/endpoints":                         "/v1/webhooks/endpoints/{id}",
	"/v1/admin/channels":                             "/v1/admin/channels/{channel.id}",
	"/v1/test-clocks":                                "/v1/test-clocks/{id}",
}
