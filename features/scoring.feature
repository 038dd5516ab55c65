Feature: Scoring under national-v1
  Under the national policy, national-v1, a citizen's score on a date is 1000, plus the
  positive points counting that day (at most 100 together), minus the negative points
  counting that day, and never below 0. The bands are AAA from 1050, AA from 1030 to
  1049, A from 960 to 1029, B from 850 to 959, C from 600 to 849 and D below 600.

  A record counts on a date from the day it starts, up to but not including the day
  it ends. "N years after" a date is the same calendar date N years later, and
  29 February becomes 28 February. Each reckoning below is worked out by hand from
  the policy's table.

  Background:
    Given the authorities are registered
    And these records are in the ledger:
      | citizen   | authority          | record    | reference | on         |
      | Wang Fang | the civil registry | enrolment | CR-1      | 2008-03-07 |
      | Li Wei    | the civil registry | enrolment | CR-2      | 2003-11-30 |

  Scenario: A citizen with nothing on her record stands at 1000, in band A
    When the scores are brought up to date with the ledger
    Then under national-v1 the score of Wang Fang is:
      | as of      | score | band | reckoning |
      | 2008-03-07 | 1000  | A    | 1000      |
      | 2026-03-01 | 1000  | A    | 1000      |

  Scenario Outline: An unsettled <infraction> costs <points> points from its date until it expires <years> years later
    Given these records are in the ledger:
      | citizen   | authority   | record       | reference | on         | amount   |
      | Wang Fang | <authority> | <infraction> | INF-1     | 2020-04-01 | <amount> |
    When the scores are brought up to date with the ledger
    Then under national-v1 the score of Wang Fang is:
      | as of        | score   | band   | reckoning       |
      | 2020-03-31   | 1000    | A      | 1000            |
      | 2020-04-01   | <score> | <band> | 1000 - <points> |
      | <last day>   | <score> | <band> | 1000 - <points> |
      | <expires on> | 1000    | A      | 1000            |

    Examples:
      | infraction          | authority          | amount   | points | years | score | band | last day   | expires on |
      | traffic fine        | the traffic police | 200.00   | 5      | 3     | 995   | A    | 2023-03-31 | 2023-04-01 |
      | tax arrears         | the tax bureau     | 3000.00  | 30     | 7     | 970   | A    | 2027-03-31 | 2027-04-01 |
      | court judgment      | the people's court | 8000.00  | 20     | 7     | 980   | A    | 2027-03-31 | 2027-04-01 |
      | judgment default    | the people's court | 8000.00  | 100    | 7     | 900   | B    | 2027-03-31 | 2027-04-01 |
      | loan default        | the bank           | 20000.00 | 50     | 7     | 950   | B    | 2027-03-31 | 2027-04-01 |
      | criminal conviction | the people's court |          | 150    | 10    | 850   | B    | 2030-03-31 | 2030-04-01 |

  Scenario: An infraction dated 29 February expires on 28 February
    Given these records are in the ledger:
      | citizen   | authority          | record       | reference | on         | amount |
      | Wang Fang | the traffic police | traffic fine | TP-1      | 2024-02-29 | 200.00 |
    When the scores are brought up to date with the ledger
    Then under national-v1 the score of Wang Fang is:
      | as of      | score | band | reckoning |
      | 2024-02-28 | 1000  | A    | 1000      |
      | 2024-02-29 | 995   | A    | 1000 - 5  |
      | 2027-02-27 | 995   | A    | 1000 - 5  |
      | 2027-02-28 | 1000  | A    | 1000      |

  Scenario: A residual that starts on 29 February ends on 28 February a year later
    Given these records are in the ledger:
      | citizen   | authority      | record      | reference | on         | amount  | acts on |
      | Wang Fang | the tax bureau | tax arrears | TX-1      | 2023-11-01 | 3000.00 |         |
      | Wang Fang | the tax bureau | settlement  | TX-2      | 2024-02-29 | 3000.00 | TX-1    |
    When the scores are brought up to date with the ledger
    Then under national-v1 the score of Wang Fang is:
      | as of      | score | band | reckoning |
      | 2024-02-28 | 970   | A    | 1000 - 30 |
      | 2024-02-29 | 990   | A    | 1000 - 10 |
      | 2025-02-27 | 990   | A    | 1000 - 10 |
      | 2025-02-28 | 1000  | A    | 1000      |

  Scenario: A settled traffic fine stops counting on the day it is settled and leaves nothing behind
    Given these records are in the ledger:
      | citizen   | authority          | record       | reference | on         | amount | acts on |
      | Wang Fang | the traffic police | traffic fine | TP-1      | 2025-01-10 | 200.00 |         |
      | Wang Fang | the traffic police | settlement   | TP-2      | 2025-02-01 | 200.00 | TP-1    |
    When the scores are brought up to date with the ledger
    Then under national-v1 the score of Wang Fang is:
      | as of      | score | band | reckoning |
      | 2025-01-10 | 995   | A    | 1000 - 5  |
      | 2025-01-31 | 995   | A    | 1000 - 5  |
      | 2025-02-01 | 1000  | A    | 1000      |

  Scenario Outline: A settled <infraction> leaves <residual> points for <period> after its settlement
    Given these records are in the ledger:
      | citizen   | authority   | record       | reference | on         | amount   | acts on |
      | Wang Fang | <authority> | <infraction> | INF-1     | 2024-01-15 | <amount> |         |
      | Wang Fang | <authority> | settlement   | INF-2     | 2024-03-01 | <amount> | INF-1   |
    When the scores are brought up to date with the ledger
    Then under national-v1 the score of Wang Fang is:
      | as of      | score           | band           | reckoning         |
      | 2024-01-14 | 1000            | A              | 1000              |
      | 2024-02-29 | <open score>    | <open band>    | 1000 - <open>     |
      | 2024-03-01 | <settled score> | <settled band> | 1000 - <residual> |
      | <last day> | <settled score> | <settled band> | 1000 - <residual> |
      | <ends on>  | 1000            | A              | 1000              |

    Examples:
      | infraction       | authority          | amount   | open | open score | open band | residual | period  | settled score | settled band | last day   | ends on    |
      | tax arrears      | the tax bureau     | 3000.00  | 30   | 970        | A         | 10       | 1 year  | 990           | A            | 2025-02-28 | 2025-03-01 |
      | court judgment   | the people's court | 8000.00  | 20   | 980        | A         | 5        | 1 year  | 995           | A            | 2025-02-28 | 2025-03-01 |
      | judgment default | the people's court | 8000.00  | 100  | 900        | B         | 30       | 1 year  | 970           | A            | 2025-02-28 | 2025-03-01 |
      | loan default     | the bank           | 20000.00 | 50   | 950        | B         | 25       | 2 years | 975           | A            | 2026-02-28 | 2026-03-01 |

  Scenario: The residual of a settlement never outlasts the infraction's hard expiry
    Given these records are in the ledger:
      | citizen   | authority      | record      | reference | on         | amount  | acts on |
      | Wang Fang | the tax bureau | tax arrears | TX-1      | 2018-05-10 | 3000.00 |         |
      | Wang Fang | the tax bureau | settlement  | TX-2      | 2025-01-20 | 3000.00 | TX-1    |
    When the scores are brought up to date with the ledger
    Then under national-v1 the score of Wang Fang is:
      | as of      | score | band | reckoning |
      | 2025-01-19 | 970   | A    | 1000 - 30 |
      | 2025-01-20 | 990   | A    | 1000 - 10 |
      | 2025-05-09 | 990   | A    | 1000 - 10 |
      | 2025-05-10 | 1000  | A    | 1000      |

  Scenario: Points from several records add up and move the citizen between bands
    Given these records are in the ledger:
      | citizen | authority          | record         | reference | on         | amount   | acts on | details     |
      | Li Wei  | the university     | degree         | U-1       | 2007-07-01 |          |         | BSc Finance |
      | Li Wei  | the bank           | loan default   | B-1       | 2024-02-01 | 20000.00 |         |             |
      | Li Wei  | the people's court | court judgment | J-1       | 2024-06-01 | 8000.00  |         |             |
      | Li Wei  | the people's court | settlement     | J-2       | 2024-09-01 | 8000.00  | J-1     |             |
      | Li Wei  | the traffic police | traffic fine   | TP-1      | 2025-01-10 | 200.00   |         |             |
    When the scores are brought up to date with the ledger
    Then under national-v1 the score of Li Wei is:
      | as of      | score | band | reckoning                   |
      | 2024-01-31 | 1010  | A    | 1000 + 10                   |
      | 2024-02-01 | 960   | A    | 1000 + 10 - 50              |
      | 2024-06-01 | 940   | B    | 1000 + 10 - 50 - 20         |
      | 2024-09-01 | 955   | B    | 1000 + 10 - 50 - 5          |
      | 2025-01-10 | 950   | B    | 1000 + 10 - 50 - 5 - 5      |
      | 2025-09-01 | 955   | B    | 1000 + 10 - 50 - 5          |
      | 2028-01-10 | 960   | A    | 1000 + 10 - 50              |
      | 2031-02-01 | 1010  | A    | 1000 + 10                   |

  Scenario: The score never falls below 0
    Given these records are in the ledger:
      | citizen | authority          | record              | reference | on         |
      | Li Wei  | the people's court | criminal conviction | CV-1      | 2019-01-10 |
      | Li Wei  | the people's court | criminal conviction | CV-2      | 2020-01-10 |
      | Li Wei  | the people's court | criminal conviction | CV-3      | 2021-01-10 |
      | Li Wei  | the people's court | criminal conviction | CV-4      | 2022-01-10 |
      | Li Wei  | the people's court | criminal conviction | CV-5      | 2023-01-10 |
      | Li Wei  | the people's court | criminal conviction | CV-6      | 2024-01-10 |
      | Li Wei  | the people's court | criminal conviction | CV-7      | 2025-01-10 |
    When the scores are brought up to date with the ledger
    Then under national-v1 the score of Li Wei is:
      | as of      | score | band | reckoning                   |
      | 2023-01-10 | 250   | D    | 1000 - 750                  |
      | 2025-01-09 | 100   | D    | 1000 - 900                  |
      | 2025-01-10 | 0     | D    | 1000 - 1050, floored at 0   |
      | 2029-01-09 | 0     | D    | 1000 - 1050, floored at 0   |
      | 2029-01-10 | 100   | D    | 1000 - 900                  |

  Scenario: Tax paid on time counts 5 points for 3 years
    Given these records are in the ledger:
      | citizen   | authority      | record           | reference | on         | amount  |
      | Wang Fang | the tax bureau | tax paid on time | TB-1      | 2023-04-30 | 1200.00 |
      | Wang Fang | the tax bureau | tax paid on time | TB-2      | 2024-04-30 | 1300.00 |
    When the scores are brought up to date with the ledger
    Then under national-v1 the score of Wang Fang is:
      | as of      | score | band | reckoning    |
      | 2023-04-29 | 1000  | A    | 1000         |
      | 2023-04-30 | 1005  | A    | 1000 + 5     |
      | 2024-04-30 | 1010  | A    | 1000 + 5 + 5 |
      | 2026-04-29 | 1010  | A    | 1000 + 5 + 5 |
      | 2026-04-30 | 1005  | A    | 1000 + 5     |
      | 2027-04-30 | 1000  | A    | 1000         |

  Scenario: Loans repaid on time count a point each for 2 years, at most 30 together
    The 35 repayments fall on 2024-01-01, 2024-01-08 and every 7 days to 2024-08-26;
    the 30th is on 2024-07-22. Each counts for 2 years, so the 6th (2024-02-05) stops
    counting on 2026-02-05 and the last on 2026-08-26.

    Given Wang Fang repaid 35 loans on time to the bank, one a week from 2024-01-01
    When the scores are brought up to date with the ledger
    Then under national-v1 the score of Wang Fang is:
      | as of      | score | band | reckoning |
      | 2023-12-31 | 1000  | A    | 1000      |
      | 2024-01-01 | 1001  | A    | 1000 + 1  |
      | 2024-07-21 | 1029  | A    | 1000 + 29 |
      | 2024-07-22 | 1030  | AA   | 1000 + 30 |
      | 2024-08-26 | 1030  | AA   | 1000 + 30 |
      | 2026-02-04 | 1030  | AA   | 1000 + 30 |
      | 2026-02-05 | 1029  | A    | 1000 + 29 |
      | 2026-08-25 | 1001  | A    | 1000 + 1  |
      | 2026-08-26 | 1000  | A    | 1000      |

  Scenario: Each band begins at its minimum score
    Four citizens repay a loan on time every week from 2024-01-01, a point more each
    week: 9 repayments count on 2024-03-03, 10 on 2024-03-04, 29 on 2024-07-21 and
    30 on 2024-07-22. What else is on their records stays the same over those dates.

    Given these records are in the ledger:
      | citizen   | authority          | record              | reference | on         | amount   | details          |
      | Zhang Min | the civil registry | enrolment           | CR-3      | 2018-02-28 |          |                  |
      | Chen Jie  | the civil registry | enrolment           | CR-4      | 1996-06-15 |          |                  |
      | Wang Fang | the university     | degree              | U-1       | 2012-07-01 |          | BSc Physics      |
      | Wang Fang | the university     | degree              | U-2       | 2014-07-01 |          | MSc Physics      |
      | Li Wei    | the bank           | loan default        | B-1       | 2023-06-01 | 20000.00 |                  |
      | Zhang Min | the bank           | loan default        | B-2       | 2023-06-01 | 20000.00 |                  |
      | Zhang Min | the people's court | judgment default    | J-1       | 2023-07-01 | 8000.00  |                  |
      | Zhang Min | the tax bureau     | tax arrears         | TX-1      | 2023-08-01 | 3000.00  |                  |
      | Chen Jie  | the people's court | criminal conviction | CV-1      | 2022-03-01 |          |                  |
      | Chen Jie  | the people's court | criminal conviction | CV-2      | 2023-03-01 |          |                  |
      | Chen Jie  | the people's court | judgment default    | J-2       | 2023-07-01 | 8000.00  |                  |
      | Chen Jie  | the tax bureau     | tax arrears         | TX-2      | 2023-08-01 | 3000.00  |                  |
    And Wang Fang repaid 30 loans on time to the bank, one a week from 2024-01-01
    And Li Wei repaid 30 loans on time to the bank, one a week from 2024-01-01
    And Zhang Min repaid 30 loans on time to the bank, one a week from 2024-01-01
    And Chen Jie repaid 30 loans on time to the bank, one a week from 2024-01-01
    When the scores are brought up to date with the ledger
    Then under national-v1 the scores are:
      | citizen   | as of      | score | band | reckoning                     |
      | Wang Fang | 2024-03-03 | 1029  | A    | 1000 + 20 + 9                 |
      | Wang Fang | 2024-03-04 | 1030  | AA   | 1000 + 20 + 10                |
      | Wang Fang | 2024-07-21 | 1049  | AA   | 1000 + 20 + 29                |
      | Wang Fang | 2024-07-22 | 1050  | AAA  | 1000 + 20 + 30                |
      | Li Wei    | 2024-03-03 | 959   | B    | 1000 - 50 + 9                 |
      | Li Wei    | 2024-03-04 | 960   | A    | 1000 - 50 + 10                |
      | Zhang Min | 2024-07-21 | 849   | C    | 1000 - 50 - 100 - 30 + 29     |
      | Zhang Min | 2024-07-22 | 850   | B    | 1000 - 50 - 100 - 30 + 30     |
      | Chen Jie  | 2024-07-21 | 599   | D    | 1000 - 150 - 150 - 100 - 30 + 29 |
      | Chen Jie  | 2024-07-22 | 600   | C    | 1000 - 150 - 150 - 100 - 30 + 30 |

  Scenario: Positive points count at most 100 together, and negative points are taken off after that cap
    On 2025-05-01 the positive points are 40 for four degrees, 20 for four licences,
    15 for three years of tax paid on time and 30 for loans repaid on time: 105,
    counted as 100. By 2026-04-30 the first tax payment and 18 of the loans have
    stopped counting, leaving 87.

    Given these records are in the ledger:
      | citizen   | authority          | record               | reference | on         | amount  | details                  |
      | Wang Fang | the university     | degree               | U-1       | 2012-07-01 |         | BSc Physics              |
      | Wang Fang | the university     | degree               | U-2       | 2014-07-01 |         | MSc Physics              |
      | Wang Fang | the university     | degree               | U-3       | 2016-07-01 |         | BA Economics             |
      | Wang Fang | the university     | degree               | U-4       | 2018-07-01 |         | PhD Physics              |
      | Wang Fang | the university     | professional licence | U-5       | 2019-03-01 |         | Registered engineer      |
      | Wang Fang | the university     | professional licence | U-6       | 2020-03-01 |         | Certified accountant     |
      | Wang Fang | the university     | professional licence | U-7       | 2021-03-01 |         | Radiation safety officer |
      | Wang Fang | the university     | professional licence | U-8       | 2022-03-01 |         | Patent agent             |
      | Wang Fang | the tax bureau     | tax paid on time     | TB-1      | 2023-04-30 | 1200.00 |                          |
      | Wang Fang | the tax bureau     | tax paid on time     | TB-2      | 2024-04-30 | 1300.00 |                          |
      | Wang Fang | the tax bureau     | tax paid on time     | TB-3      | 2025-04-30 | 1400.00 |                          |
      | Wang Fang | the traffic police | traffic fine         | TP-1      | 2025-06-01 | 200.00  |                          |
    And Wang Fang repaid 35 loans on time to the bank, one a week from 2024-01-01
    When the scores are brought up to date with the ledger
    Then under national-v1 the score of Wang Fang is:
      | as of      | score | band | reckoning                   |
      | 2023-12-31 | 1065  | AAA  | 1000 + 40 + 20 + 5          |
      | 2024-08-26 | 1100  | AAA  | 1000 + 40 + 20 + 10 + 30    |
      | 2025-05-01 | 1100  | AAA  | 1000 + 100                  |
      | 2025-06-01 | 1095  | AAA  | 1000 + 100 - 5              |
      | 2026-04-30 | 1082  | AAA  | 1000 + 40 + 20 + 10 + 17 - 5 |

  Scenario: A degree counts while not revoked, and its revocation costs 40 points for 7 years
    Given these records are in the ledger:
      | citizen   | authority      | record               | reference | on         | acts on | details                   |
      | Wang Fang | the university | degree               | U-1       | 2012-07-01 |         | BSc Physics               |
      | Wang Fang | the university | professional licence | U-2       | 2019-03-01 |         | Registered engineer       |
      | Wang Fang | the university | revocation           | U-3       | 2024-09-01 | U-1     | thesis found plagiarised |
    When the scores are brought up to date with the ledger
    Then under national-v1 the score of Wang Fang is:
      | as of      | score | band | reckoning      |
      | 2012-06-30 | 1000  | A    | 1000           |
      | 2012-07-01 | 1010  | A    | 1000 + 10      |
      | 2019-03-01 | 1015  | A    | 1000 + 10 + 5  |
      | 2024-08-31 | 1015  | A    | 1000 + 10 + 5  |
      | 2024-09-01 | 965   | A    | 1000 + 5 - 40  |
      | 2031-08-31 | 965   | A    | 1000 + 5 - 40  |
      | 2031-09-01 | 1005  | A    | 1000 + 5       |

  Scenario: A revoked professional licence costs 20 points for 7 years
    Given these records are in the ledger:
      | citizen   | authority      | record               | reference | on         | acts on | details             |
      | Wang Fang | the university | professional licence | U-1       | 2019-03-01 |         | Registered engineer |
      | Wang Fang | the university | revocation           | U-2       | 2025-01-10 | U-1     | licence lapsed      |
    When the scores are brought up to date with the ledger
    Then under national-v1 the score of Wang Fang is:
      | as of      | score | band | reckoning |
      | 2025-01-09 | 1005  | A    | 1000 + 5  |
      | 2025-01-10 | 980   | A    | 1000 - 20 |
      | 2032-01-09 | 980   | A    | 1000 - 20 |
      | 2032-01-10 | 1000  | A    | 1000      |

  Scenario: Two policies score the same records independently: a traffic fine moves national-v1 and not finance-v1
    finance-v1, a lender's policy, starts at 700, counts only financial records and
    takes 60 points for open tax arrears; 660 to 719 is "fair", 580 to 659 "poor".

    Given these records are in the ledger:
      | citizen   | authority          | record       | reference | on         | amount  |
      | Wang Fang | the tax bureau     | tax arrears  | TX-1      | 2025-01-15 | 3000.00 |
      | Wang Fang | the traffic police | traffic fine | TP-1      | 2025-03-01 | 200.00  |
    When the scores are brought up to date with the ledger
    Then the scores of Wang Fang are:
      | policy      | as of      | score | band | reckoning     |
      | national-v1 | 2025-01-14 | 1000  | A    | 1000          |
      | national-v1 | 2025-02-28 | 970   | A    | 1000 - 30     |
      | national-v1 | 2025-03-01 | 965   | A    | 1000 - 30 - 5 |
      | finance-v1  | 2025-01-14 | 700   | fair | 700           |
      | finance-v1  | 2025-02-28 | 640   | poor | 700 - 60      |
      | finance-v1  | 2025-03-01 | 640   | poor | 700 - 60      |
