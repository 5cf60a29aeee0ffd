package catalog

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/jmoiron/sqlx"
	"golang.org/x/text/language"

	"github.com/chatpay/chatpay/internal/database"
	"github.com/chatpay/chatpay/internal/problem"
)

// A merchant types its categories once, in whatever words it uses
// ("coffee"), and they appear inside the shopper's rule text ("not for
// coffee"). Shoppers read other languages, so the merchant may give each
// category a label per language ({"coffee": {"zh": "咖啡", "ru": "кофе"}});
// the rule text uses them, and falls back sensibly where a label is missing
// (CategoryLabels.names).

// CategoryLabels are a merchant's names for its categories, per language:
// category → language (a primary subtag: "zh") → label.
type CategoryLabels map[string]map[string]string

// Limits of category labels.
const (
	CategoryLabelsMax      = 200 // categories with labels, per merchant
	CategoryLabelLangsMax  = 10  // languages per category
	CategoryLabelLengthMax = 64  // characters of one label
)

// names are categories as a page in m's language shows them: the
// merchant's label in that language; else, on an English page, the category
// as the merchant typed it; else the merchant's English label, or the
// category itself, quoted, so that a word in another script reads as a
// name rather than as part of the sentence (不适用于“coffee”).
func (l CategoryLabels) names(m *messages, categories []string) []string {
	out := make([]string, len(categories))
	for i, category := range categories {
		byLang := l[category]
		switch {
		case byLang[m.lang] != "":
			out[i] = byLang[m.lang]
		case m.lang == english.lang:
			out[i] = category
		case byLang[english.lang] != "":
			out[i] = m.quote(byLang[english.lang])
		default:
			out[i] = m.quote(category)
		}
	}
	return out
}

// CategoryLabels returns the merchant's category labels (empty, not nil,
// when it has none).
func (s *Service) CategoryLabels(ctx context.Context, merchantID string) (CategoryLabels, error) {
	return readCategoryLabels(ctx, s.db, merchantID)
}

// SetCategoryLabels replaces every category label of the merchant with
// labels (an empty set removes them all). Categories are normalised as item
// categories are (trimmed, lower case), languages to their primary subtag.
// Errors: validation_failed naming the category and language.
func (s *Service) SetCategoryLabels(ctx context.Context, merchantID string, labels CategoryLabels) (CategoryLabels, error) {
	clean, err := validCategoryLabels(labels)
	if err != nil {
		return nil, err
	}
	now := s.now().UTC()
	err = database.WithTx(ctx, s.db, nil, func(tx *sqlx.Tx) error {
		// Two replacements at once would otherwise interleave their rows.
		if _, err := tx.ExecContext(ctx, lockMerchantLabelsSQL, merchantID); err != nil {
			return fmt.Errorf("lock category labels: %w", err)
		}
		if _, err := tx.ExecContext(ctx, deleteCategoryLabelsSQL, merchantID); err != nil {
			return fmt.Errorf("clear category labels: %w", err)
		}
		for category, byLang := range clean {
			for lang, label := range byLang {
				if _, err := tx.ExecContext(ctx, insertCategoryLabelSQL, merchantID, category, lang, label, now); err != nil {
					return fmt.Errorf("store category label: %w", err)
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return clean, nil
}

func validCategoryLabels(labels CategoryLabels) (CategoryLabels, error) {
	var errs []problem.FieldError
	bad := func(field, code, format string, args ...any) {
		errs = append(errs, problem.FieldError{Field: field, Code: code, Detail: fmt.Sprintf(format, args...)})
	}
	if len(labels) > CategoryLabelsMax {
		bad("categories", "too_many", "at most %d categories have labels", CategoryLabelsMax)
		return nil, problem.Invalid(errs...)
	}
	clean := CategoryLabels{}
	for _, rawCategory := range sortedKeys(labels) {
		category := normalizeCategory(rawCategory)
		field := "categories." + rawCategory
		if category == "" || !validText(category, CategoryLengthMax) {
			bad(field, "invalid_category", "a category is 1 to %d characters", CategoryLengthMax)
			continue
		}
		byLang := labels[rawCategory]
		if len(byLang) > CategoryLabelLangsMax {
			bad(field, "too_many", "at most %d languages per category", CategoryLabelLangsMax)
			continue
		}
		for _, rawLang := range sortedKeys(byLang) {
			tag, err := language.Parse(rawLang)
			base, confidence := tag.Base()
			if err != nil || confidence == language.No || base.String() == "und" {
				bad(field+"."+rawLang, "invalid_language", "a language is a BCP 47 tag such as zh, zh-CN or ru")
				continue
			}
			label := strings.TrimSpace(byLang[rawLang])
			if label == "" || !validText(label, CategoryLabelLengthMax) || strings.ContainsAny(label, "\n\t") {
				bad(field+"."+rawLang, "invalid_label", "a label is 1 to %d characters on one line", CategoryLabelLengthMax)
				continue
			}
			if clean[category] == nil {
				clean[category] = map[string]string{}
			}
			clean[category][base.String()] = label
		}
	}
	if len(errs) > 0 {
		return nil, problem.Invalid(errs...)
	}
	return clean, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func readCategoryLabels(ctx context.Context, q sqlx.QueryerContext, merchantID string) (CategoryLabels, error) {
	var rows []struct {
		Category string `db:"category"`
		Lang     string `db:"lang"`
		Label    string `db:"label"`
	}
	if err := sqlx.SelectContext(ctx, q, &rows, selectCategoryLabelsSQL, merchantID); err != nil {
		return nil, fmt.Errorf("read category labels: %w", err)
	}
	labels := CategoryLabels{}
	for _, r := range rows {
		if labels[r.Category] == nil {
			labels[r.Category] = map[string]string{}
		}
		labels[r.Category][r.Lang] = r.Label
	}
	return labels, nil
}

const (
	// NO KEY UPDATE, not UPDATE: sales insert rows that reference the
	// merchant (a key share lock), and must not wait on a label change.
	lockMerchantLabelsSQL   = `SELECT 1 FROM merchants WHERE id = $1 FOR NO KEY UPDATE`
	selectCategoryLabelsSQL = `SELECT category, lang, label FROM category_labels WHERE merchant_id = $1`
	deleteCategoryLabelsSQL = `DELETE FROM category_labels WHERE merchant_id = $1`
	insertCategoryLabelSQL  = `INSERT INTO category_labels (merchant_id, category, lang, label, updated_at) VALUES ($1, $2, $3, $4, $5)`
)
