package payments

import (
	"context"

	"github.com/chatpay/chatpay/catalog"
	"github.com/chatpay/chatpay/qr"
)

// What the checkout page reads when a shopper opens a scanned code, before
// any "Buy now": on the pool, so the shopper pages need no database handle of
// their own. A purchase resolves the code again inside its transaction (Buy).

// ScannedCode resolves a token a shopper opened. It returns qr's errors
// (qr_not_found, qr_revoked, qr_expired, qr_used).
func (s *Service) ScannedCode(ctx context.Context, token string) (qr.Code, error) {
	return s.qr.Resolve(ctx, s.db, token)
}

// RecordScan counts a shopper's opening of a code for the merchant's QR
// funnel.
func (s *Service) RecordScan(ctx context.Context, codeID string, scan qr.Scan) error {
	return s.qr.RecordScan(ctx, s.db, codeID, scan)
}

// OfferedItem returns an item as the catalog sells it now, with its
// merchant, or not_found.
func (s *Service) OfferedItem(ctx context.Context, itemID string) (catalog.Item, catalog.Merchant, error) {
	return s.catalog.ItemForSale(ctx, s.db, itemID)
}
