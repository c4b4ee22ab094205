// SPDX-License-Identifier: MIT
// Calls that fail in each way a revert reason is decoded: a panic and a custom error.
pragma solidity ^0.8.20;

contract TestReverts {
    error Refused(uint256 code);

    function divide(uint256 numerator, uint256 denominator) external pure returns (uint256) {
        return numerator / denominator;
    }

    function refuse(uint256 code) external pure {
        revert Refused(code);
    }
}
