package payments

import (
	"context"
	"fmt"

	"github.com/jmoiron/sqlx"

	"github.com/chatpay/chatpay/internal/money"
	"github.com/chatpay/chatpay/ledger"
)

// Funding is a wallet credit that no shopper paid a provider for: the
// demo's starting balance and the bench's shoppers. Real money only enters
// a wallet through TopUp.
type Funding struct {
	ShopperID string
	Amount    money.Amount
	// Source names the provider clearing account that pays ("demo",
	// "sandbox"), so the audit sees where the money came from.
	Source string
	// Key makes the credit idempotent: the same key credits once.
	Key         string
	Description string
}

// FundWallets credits every funding in tx, one balanced ledger transaction
// each (debit the source's clearing account, credit the wallet). It returns
// the ledger's errors (idempotency_conflict for a key reused with another
// amount).
func (s *Service) FundWallets(ctx context.Context, tx *sqlx.Tx, fundings ...Funding) error {
	for _, f := range fundings {
		_, err := s.ledger.Post(ctx, tx, ledger.Transaction{
			Key: "fund:" + f.Key, Description: f.Description,
			Postings: []ledger.Posting{
				ledger.Debit(ledger.ProviderClearing(f.Source), f.Amount.Currency, f.Amount.Minor),
				ledger.Credit(ledger.ShopperWallet(f.ShopperID), f.Amount.Currency, f.Amount.Minor),
			},
		})
		if err != nil {
			return fmt.Errorf("fund wallet of %s: %w", f.ShopperID, err)
		}
	}
	return nil
}

// PrepareMerchantAccounts opens the ledger account a voucher sale credits
// (deferred revenue) for each merchant in currency, so that a merchant's
// first sale does not pay for creating it (the bench's warm-up).
func (s *Service) PrepareMerchantAccounts(ctx context.Context, tx *sqlx.Tx, currency money.Currency, merchantIDs ...string) error {
	for _, id := range merchantIDs {
		if _, err := s.ledger.EnsureAccount(ctx, tx, ledger.MerchantDeferred(id), currency); err != nil {
			return fmt.Errorf("open deferred account of %s: %w", id, err)
		}
	}
	return nil
}
