package payments

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/chatpay/chatpay/internal/problem"
)

// A coupon credential is the bearer token in a coupon link (docs/coupons.md).
// The chat's link (redeem_url of coupon.issued) and the receipt page's links
// carry one; it opens the coupon without the messenger's launch context,
// which lasts 15 minutes, so a shopper who bought while queueing still has
// the coupon at the till. Only the token's SHA-256 is stored.
const (
	// CouponLinkPath starts a coupon link: /c/<token>.
	CouponLinkPath = "/c/"
	// couponTokenBytes is the token's entropy: 256 bits, unguessable.
	couponTokenBytes = 32
	// receiptCredentialsKept bounds the links one coupon's receipt page has
	// minted: each view of the receipt mints one, and the oldest beyond this
	// stop working (the chat's link always stays).
	receiptCredentialsKept = 10

	credentialFromChat    = "chat"
	credentialFromReceipt = "receipt"
)

// Refusals of a coupon link: a token chatpay never issued (mistyped, cut
// by a messenger, or made up); a link whose own coupon is over, asked for
// the shopper's other coupons.
const (
	CodeCouponLinkNotFound = "coupon_link_not_found"
	CodeCouponLinkClosed   = "coupon_link_closed"
)

// CouponCredential is what a coupon link proves: this shopper holds this
// coupon of this merchant.
type CouponCredential struct {
	CouponID   string    `db:"coupon_id"`
	ShopperID  string    `db:"shopper_id"`
	MerchantID string    `db:"merchant_id"`
	Source     string    `db:"source"`
	CreatedAt  time.Time `db:"created_at"`
}

// CouponLink is the public URL of a coupon link with token.
func (s *Service) CouponLink(token string) string {
	return s.qr.PageURL(CouponLinkPath + token)
}

// Showable says whether a coupon may show its rotating code at now: active
// and not past its end (the expiry job may not have run yet). A link to a
// coupon that is not showable still opens, to say what happened to it.
func (c Coupon) Showable(now time.Time) bool {
	return c.Status == CouponActive && (!c.ValidUntil.Valid || now.Before(c.ValidUntil.Time))
}

// mintCouponCredential stores a new credential for c in q (the caller's
// transaction) and returns its token, which is never stored. A purchase's
// own chat link is written with its coupon, by purchase_pay; this is for a
// link made later (a receipt page's).
func (s *Service) mintCouponCredential(ctx context.Context, q sqlx.ExtContext, c Coupon, source string, now time.Time) (string, error) {
	token := newCouponToken()
	if _, err := s.stmts.Exec(ctx, q, insertCouponCredentialSQL, couponTokenHash(token), c.ID, c.ShopperID, c.MerchantID, source, now); err != nil {
		return "", fmt.Errorf("store coupon credential: %w", err)
	}
	return token, nil
}

// newCouponToken is a new link token; only its hash is ever stored.
func newCouponToken() string {
	raw := make([]byte, couponTokenBytes)
	_, _ = rand.Read(raw) // crypto/rand.Read never fails (Go 1.24)
	return base64.RawURLEncoding.EncodeToString(raw)
}

func couponTokenHash(token string) []byte {
	sum := sha256.Sum256([]byte(token))
	return sum[:]
}

// CouponByLink resolves a coupon link's token to its credential and coupon,
// whatever the coupon's status: the page says plainly when it was used,
// refunded or has expired. An unknown token is coupon_link_not_found (404).
func (s *Service) CouponByLink(ctx context.Context, token string) (CouponCredential, Coupon, error) {
	var cred CouponCredential
	// A token is base64url of couponTokenBytes; anything longer is not ours
	// and is not worth hashing.
	if len(token) > base64.RawURLEncoding.EncodedLen(couponTokenBytes) {
		return cred, Coupon{}, couponLinkNotFound()
	}
	err := s.db.GetContext(ctx, &cred, selectCouponCredentialSQL, couponTokenHash(token))
	if errors.Is(err, sql.ErrNoRows) {
		return cred, Coupon{}, couponLinkNotFound()
	}
	if err != nil {
		return cred, Coupon{}, fmt.Errorf("find coupon credential: %w", err)
	}
	c, err := s.CredentialCoupon(ctx, cred, cred.CouponID)
	return cred, c, err
}

// CredentialCoupon is couponID if it belongs to the credential's shopper at
// the credential's merchant ("My coupons" opens each through the link that
// reached it); anything else is not found.
func (s *Service) CredentialCoupon(ctx context.Context, cred CouponCredential, couponID string) (Coupon, error) {
	var c Coupon
	q := `SELECT ` + couponColumns + couponFrom + ` WHERE c.id = $1 AND c.shopper_id = $2 AND c.merchant_id = $3`
	err := s.db.GetContext(ctx, &c, q, couponID, cred.ShopperID, cred.MerchantID)
	if errors.Is(err, sql.ErrNoRows) {
		return Coupon{}, problem.New(problem.KindNotFound, CodeCouponNotFound, "no such coupon for this link")
	}
	if err != nil {
		return Coupon{}, fmt.Errorf("get coupon: %w", err)
	}
	return c, c.decodeRules()
}

// CredentialWallet lists "My coupons" for a link: the shopper's coupons at
// the link's merchant that can still be shown at the till, the ones ending
// soonest first. Only a link whose own coupon is still showable opens it, so
// a link forwarded with a coupon as a gift stops revealing the giver's other
// coupons once that coupon is used (docs/coupons.md).
func (s *Service) CredentialWallet(ctx context.Context, cred CouponCredential, now time.Time) ([]Coupon, error) {
	own, err := s.CredentialCoupon(ctx, cred, cred.CouponID)
	if err != nil {
		return nil, err
	}
	if !own.Showable(now) {
		return nil, problem.New(problem.KindNotFound, CodeCouponLinkClosed, "this coupon link no longer opens the wallet")
	}
	var coupons []Coupon
	q := `SELECT ` + couponColumns + couponFrom + ` WHERE ` + walletCouponsWhere
	if err := s.db.SelectContext(ctx, &coupons, q, cred.ShopperID, cred.MerchantID, now, ListPageSizeMax); err != nil {
		return nil, fmt.Errorf("list wallet coupons: %w", err)
	}
	for i := range coupons {
		if err := coupons[i].decodeRules(); err != nil {
			return nil, err
		}
	}
	return coupons, nil
}

// ReceiptCouponLinks mints a link for each showable coupon of an order the
// shopper (proven by the messenger) is looking at, keyed by coupon id. The
// receipt page offers them to open the coupon, and My coupons, where they
// keep working offline and after the launch context ends.
func (s *Service) ReceiptCouponLinks(ctx context.Context, shopperID string, coupons []Coupon) (map[string]string, error) {
	tokens := map[string]string{}
	if len(coupons) == 0 {
		return tokens, nil
	}
	err := withTx(ctx, s.db, func(tx *sqlx.Tx) error {
		for _, c := range coupons {
			if c.ShopperID != shopperID {
				continue
			}
			now, err := s.nowFor(ctx, tx, c.MerchantID)
			if err != nil {
				return err
			}
			if !c.Showable(now) {
				continue
			}
			token, err := s.mintCouponCredential(ctx, tx, c, credentialFromReceipt, now)
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, pruneReceiptCredentialsSQL, c.ID, receiptCredentialsKept); err != nil {
				return fmt.Errorf("prune receipt links: %w", err)
			}
			tokens[c.ID] = token
		}
		return nil
	})
	return tokens, err
}

func couponLinkNotFound() error {
	return problem.New(problem.KindNotFound, CodeCouponLinkNotFound, "this coupon link is not valid")
}

const (
	insertCouponCredentialSQL = `
		INSERT INTO coupon_credentials (token_hash, coupon_id, shopper_id, merchant_id, source, created_at)
		VALUES ($1, $2, $3, $4, $5, $6)`
	selectCouponCredentialSQL = `
		SELECT coupon_id, shopper_id, merchant_id, source, created_at FROM coupon_credentials WHERE token_hash = $1`
	pruneReceiptCredentialsSQL = `
		DELETE FROM coupon_credentials WHERE coupon_id = $1 AND source = 'receipt' AND token_hash NOT IN (
			SELECT token_hash FROM coupon_credentials WHERE coupon_id = $1 AND source = 'receipt'
			ORDER BY seq DESC LIMIT $2)`
	walletCouponsWhere = `c.shopper_id = $1 AND c.merchant_id = $2 AND c.status = 'active'
		AND (c.valid_until IS NULL OR c.valid_until > $3)
		ORDER BY c.valid_until ASC NULLS LAST, c.issued_at DESC, c.id LIMIT $4`
)
