Feature: The enforcement list
  The enforcement list is the list of dishonest judgment defaulters. As of a date it
  names every citizen with a judgment default that is open (not yet settled) and
  counting (not expired, not vacated, not suspended by a dispute open for more than
  30 days), with the judgment default and the date the citizen was listed. A judgment
  default expires 7 years after its date. No other infraction puts anyone on the list.

  Background:
    Given the authorities are registered
    And these records are in the ledger:
      | citizen   | authority          | record           | reference | on         | amount   | acts on |
      | Wang Fang | the civil registry | enrolment        | CR-1      | 2008-03-07 |          |         |
      | Li Wei    | the civil registry | enrolment        | CR-2      | 2003-11-30 |          |         |
      | Zhang Min | the civil registry | enrolment        | CR-3      | 2018-02-28 |          |         |
      | Zhang Min | the people's court | judgment default | J-4       | 2018-06-01 | 5000.00  |         |
      | Li Wei    | the bank           | loan default     | B-1       | 2023-01-01 | 20000.00 |         |
      | Li Wei    | the people's court | court judgment   | J-5       | 2023-02-01 | 9000.00  |         |
      | Li Wei    | the people's court | judgment default | J-2       | 2023-05-10 | 12000.00 |         |
      | Li Wei    | the people's court | settlement       | J-3       | 2024-05-10 | 12000.00 | J-2     |
      | Wang Fang | the people's court | judgment default | J-1       | 2024-03-01 | 8000.00  |         |

  Scenario: Citizens with an open judgment default are listed from the date of the judgment default
    When the scores are brought up to date with the ledger
    Then on 2018-05-31 nobody is on the enforcement list
    And on 2018-06-01 the enforcement list is:
      | citizen   | authority          | reference | listed on  |
      | Zhang Min | the people's court | J-4       | 2018-06-01 |
    And on 2024-02-29 the enforcement list is:
      | citizen   | authority          | reference | listed on  |
      | Zhang Min | the people's court | J-4       | 2018-06-01 |
      | Li Wei    | the people's court | J-2       | 2023-05-10 |
    And on 2024-03-01 the enforcement list is:
      | citizen   | authority          | reference | listed on  |
      | Zhang Min | the people's court | J-4       | 2018-06-01 |
      | Li Wei    | the people's court | J-2       | 2023-05-10 |
      | Wang Fang | the people's court | J-1       | 2024-03-01 |

  Scenario: A settled judgment default is off the list from the day it is settled, though its residual still counts
    When the scores are brought up to date with the ledger
    Then on 2024-05-09 the enforcement list is:
      | citizen   | authority          | reference | listed on  |
      | Zhang Min | the people's court | J-4       | 2018-06-01 |
      | Li Wei    | the people's court | J-2       | 2023-05-10 |
      | Wang Fang | the people's court | J-1       | 2024-03-01 |
    And on 2024-05-10 the enforcement list is:
      | citizen   | authority          | reference | listed on  |
      | Zhang Min | the people's court | J-4       | 2018-06-01 |
      | Wang Fang | the people's court | J-1       | 2024-03-01 |
    And under national-v1 the score of Li Wei is:
      | as of      | score | band | reckoning             |
      | 2024-05-09 | 830   | C    | 1000 - 50 - 20 - 100 |
      | 2024-05-10 | 900   | B    | 1000 - 50 - 20 - 30  |

  Scenario: A judgment default drops off the list when it expires, 7 years after its date
    When the scores are brought up to date with the ledger
    Then on 2025-05-31 the enforcement list is:
      | citizen   | authority          | reference | listed on  |
      | Zhang Min | the people's court | J-4       | 2018-06-01 |
      | Wang Fang | the people's court | J-1       | 2024-03-01 |
    And on 2025-06-01 the enforcement list is:
      | citizen   | authority          | reference | listed on  |
      | Wang Fang | the people's court | J-1       | 2024-03-01 |
    And on 2031-02-28 the enforcement list is:
      | citizen   | authority          | reference | listed on  |
      | Wang Fang | the people's court | J-1       | 2024-03-01 |
    And on 2031-03-01 nobody is on the enforcement list

  Scenario: Other infractions, however serious, never put a citizen on the list
    Given these records are in the ledger:
      | citizen | authority          | record              | reference | on         |
      | Li Wei  | the people's court | criminal conviction | CV-1      | 2024-07-01 |
    When the scores are brought up to date with the ledger
    Then on 2024-07-01 the enforcement list is:
      | citizen   | authority          | reference | listed on  |
      | Zhang Min | the people's court | J-4       | 2018-06-01 |
      | Wang Fang | the people's court | J-1       | 2024-03-01 |
    And under national-v1 the score of Li Wei is:
      | as of      | score | band | reckoning                  |
      | 2024-07-01 | 750   | C    | 1000 - 50 - 20 - 30 - 150 |

  Scenario: A vacated judgment default was never on the list, even before the court's order
    Given these records are in the ledger:
      | citizen   | authority          | record         | reference | on         | acts on | details             |
      | Wang Fang | the people's court | vacating order | V-1       | 2024-09-01 | J-1     | set aside on appeal |
    When the scores are brought up to date with the ledger
    Then on 2024-03-01 the enforcement list is:
      | citizen   | authority          | reference | listed on  |
      | Zhang Min | the people's court | J-4       | 2018-06-01 |
      | Li Wei    | the people's court | J-2       | 2023-05-10 |
    And on 2024-09-01 the enforcement list is:
      | citizen   | authority          | reference | listed on  |
      | Zhang Min | the people's court | J-4       | 2018-06-01 |

  Scenario: A judgment default in dispute for 30 days is suspended from the list, and listed again when the dispute is upheld
    Given these records are in the ledger:
      | citizen   | authority          | record     | reference | on         | acts on                  | details          |
      | Wang Fang | the dispute office | dispute    | D-1       | 2024-06-01 | the people's court's J-1 | paid in full     |
      | Wang Fang | the dispute office | resolution | D-2       | 2024-08-15 | D-1                      | upheld           |
    When the scores are brought up to date with the ledger
    Then on 2024-06-30 the enforcement list is:
      | citizen   | authority          | reference | listed on  |
      | Zhang Min | the people's court | J-4       | 2018-06-01 |
      | Wang Fang | the people's court | J-1       | 2024-03-01 |
    And on 2024-07-01 the enforcement list is:
      | citizen   | authority          | reference | listed on  |
      | Zhang Min | the people's court | J-4       | 2018-06-01 |
    And on 2024-08-14 the enforcement list is:
      | citizen   | authority          | reference | listed on  |
      | Zhang Min | the people's court | J-4       | 2018-06-01 |
    And on 2024-08-15 the enforcement list is:
      | citizen   | authority          | reference | listed on  |
      | Zhang Min | the people's court | J-4       | 2018-06-01 |
      | Wang Fang | the people's court | J-1       | 2024-08-15 |

  Scenario: A judgment default whose dispute is resolved as removed was never on the list
    Given these records are in the ledger:
      | citizen   | authority          | record     | reference | on         | acts on                  | details      |
      | Wang Fang | the dispute office | dispute    | D-1       | 2024-06-01 | the people's court's J-1 | paid in full |
      | Wang Fang | the dispute office | resolution | D-2       | 2024-06-20 | D-1                      | removed      |
    When the scores are brought up to date with the ledger
    Then on 2024-03-01 the enforcement list is:
      | citizen   | authority          | reference | listed on  |
      | Zhang Min | the people's court | J-4       | 2018-06-01 |
      | Li Wei    | the people's court | J-2       | 2023-05-10 |
